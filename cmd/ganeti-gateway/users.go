package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// usersCommand edits the RAPI users file: "users add NAME" and "users
// passwd NAME". The running server reloads the file by itself.
func usersCommand(args []string, std stdio) error {
	if len(args) == 0 {
		return usageErrorf("users: missing subcommand: add or passwd")
	}
	sub := args[0]
	if sub != "add" && sub != "passwd" {
		if sub == "-h" || sub == "--help" || sub == "help" {
			sub = "add"
			args = []string{"add", "--help"}
		} else {
			return usageErrorf("users: unknown subcommand %q (add or passwd)", sub)
		}
	}
	fs := flag.NewFlagSet("ganeti-gateway users "+sub, flag.ContinueOnError)
	dataDir := fs.String("data-dir", server.DefaultDataDir, "the server's data dir: the users file is <data-dir>/rapi/users")
	usersFile := fs.String("users-file", "", "the users file (default <data-dir>/rapi/users)")
	var read, write, admin bool
	if sub == "add" {
		fs.BoolVar(&read, "read", false, "give the user the \"read\" option")
		fs.BoolVar(&write, "write", false, "give the user the \"write\" option (Ganeti's: every write)")
		fs.BoolVar(&admin, "admin", false, "give the user the \"admin\" option (ganeti-gateway's: opcodes no RAPI route submits, such as OP_TEST_DELAY)")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ganeti-gateway users add NAME [--read] [--write] [--admin] [--users-file F | --data-dir D]\n"+
			"       ganeti-gateway users passwd NAME [--users-file F | --data-dir D]\n\n"+
			"Adds a user to Ganeti's RAPI users file, or sets a user's password, stored as its {HA1} hash; other lines\n"+
			"and comments are kept, the file is replaced atomically with its mode and owner. The password is read\n"+
			"from the terminal (twice, not echoed) or, when stdin is not a terminal, as one line from stdin.\n"+
			"A running server reloads the file by itself. --data-dir and --users-file default to %s and\n%s, as for the server.\n\n",
			envName("data-dir"), envName("users-file"))
		fs.PrintDefaults()
	}
	if err := envDefaults(fs, "data-dir", "users-file"); err != nil {
		return &usageError{err}
	}
	names, err := parseInterleaved(fs, args[1:], std)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		return usageErrorf("users %s: want one user name, got %d arguments", sub, len(names))
	}
	name := names[0]
	if err := server.CheckUserName(name); err != nil {
		return usageErrorf("users %s: %v", sub, err)
	}
	path := *usersFile
	if path == "" {
		path = filepath.Join(*dataDir, "rapi", "users")
	}
	edit := server.UserEdit{Path: path, Name: name, Add: sub == "add", Read: read, Write: write, Admin: admin}
	// Fail before asking for a password.
	if err := edit.Check(); err != nil {
		return err
	}
	password, err := readPassword(std, name)
	if err != nil {
		return err
	}
	if err := edit.Apply(password); err != nil {
		return err
	}
	what := "set the password of"
	if sub == "add" {
		what = "added"
	}
	fmt.Fprintf(std.err, "ganeti-gateway: %s user %q in %s\n", what, name, path)
	return nil
}

// maxPasswordBytes bounds a password read from stdin.
const maxPasswordBytes = 4096

// readPassword reads a password: from the terminal without echo, twice,
// when stdin is one; else the first line of stdin.
func readPassword(std stdio, name string) (string, error) {
	if f, ok := std.in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(std.err, "Password for %s: ", name)
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(std.err)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		fmt.Fprint(std.err, "Repeat it: ")
		second, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(std.err)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		if string(first) != string(second) {
			return "", errors.New("the two passwords differ")
		}
		if len(first) == 0 {
			return "", errors.New("empty password")
		}
		return string(first), nil
	}
	sc := bufio.NewScanner(std.in)
	sc.Buffer(make([]byte, 0, 256), maxPasswordBytes)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		return "", errors.New("no password on stdin")
	}
	if sc.Text() == "" {
		return "", errors.New("empty password")
	}
	return sc.Text(), nil
}
