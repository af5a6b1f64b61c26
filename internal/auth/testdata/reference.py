"""Ganeti 3.0.2's users-file parser and Authorization checks, transcribed
from ganeti/http/auth.py and ganeti/utils/text.py, as the reference for
auth's TestMatchesPython. Run with Python 3.11.

Usage: reference.py header|users  (stdin: one hex-encoded input per line;
stdout: one JSON verdict per line)
"""
import base64
import binascii
import json
import sys
from hashlib import md5

REALM = "Ganeti Remote API"


def check_authorization(credentials):
    # HttpServerRequestAuthentication._CheckAuthorization
    if not credentials:
        return "401"
    parts = credentials.strip().split(None, 2)
    if len(parts) < 1:
        return "401"
    if parts[0].lower() == "basic":
        if len(parts) < 2:
            return "400"
        try:
            creds = base64.b64decode(parts[1].encode("ascii")).decode("ascii")
        except (TypeError, binascii.Error, UnicodeError):
            return "401"
        if ":" not in creds:
            return "401"
        user, password = creds.split(":", 1)
        return [user, password]
    return "401"


def filter_lines(text):
    # utils.FilterEmptyLinesAndComments
    return [line for line in [s.strip() for s in text.splitlines()]
            if line and not line.startswith("#")]


def parse_users(contents):
    # ParsePasswordFile
    users = {}
    for line in filter_lines(contents):
        parts = line.split(None, 2)
        if len(parts) < 2:
            continue
        options = []
        if len(parts) >= 3:
            for part in parts[2].split(","):
                options.append(part.strip())
        users[parts[0]] = (parts[1], options)
    return users


def verify(username, password, expected):
    # VerifyBasicAuthPassword
    if not expected.startswith("{"):
        expected = "{CLEARTEXT}" + expected
    end = expected.find("}", 1)
    if end <= 1:
        return False
    scheme = expected[:end + 1].upper()
    value = expected[end + 1:]
    if scheme == "{CLEARTEXT}":
        return password == value
    if scheme == "{HA1}":
        # Ganeti encodes as ASCII; the credentials of a request are ASCII.
        digest = md5(("%s:%s:%s" % (username, REALM, password)).encode("utf-8"))
        return value.lower() == digest.hexdigest().lower()
    return False


def main():
    mode = sys.argv[1]
    for line in sys.stdin:
        data = bytes.fromhex(line.strip())
        if mode == "header":
            print(json.dumps(check_authorization(data.decode("latin-1"))))
            continue
        try:
            contents = data.decode("utf-8")
        except UnicodeDecodeError:
            print("null")
            continue
        out = {}
        for name, (stored, options) in parse_users(contents).items():
            candidates = [stored, stored[stored.find("}") + 1:], "x", ""]
            out[name] = {"options": options, "candidates": candidates,
                         "verdicts": [verify(name, c, stored) for c in candidates]}
        print(json.dumps(out))


main()
