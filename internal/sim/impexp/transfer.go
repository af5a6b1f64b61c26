package impexp

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The simulated disk transfer. The importing side listens on one TCP port
// per disk with its key; the exporting side connects with its own key;
// each verifies the other's certificate against the CA the other cluster
// sent (signed with the domain secret), as Ganeti's import/export daemons
// (socat with verify=1) do. The exporting side then sends one header line,
// "<magic> <size in MiB>\n", and the importing side answers "ok\n" when
// the magic value and the size are the ones it expects, else
// "error <reason>\n".

// Ganeti's import/export daemon timeouts.
const (
	// IOTimeout bounds the TLS handshake and the header once connected
	// (ImportExportTimeouts.DEFAULT_ERROR_TIMEOUT).
	IOTimeout = 10 * time.Second
	// connectAttempt is RIE_CONNECT_ATTEMPT_TIMEOUT.
	connectAttempt = 20 * time.Second
	// retryInterval is socat's intervall=1 between connection attempts.
	retryInterval = time.Second
	// maxHeader bounds the header line.
	maxHeader = 256
)

// TransferError is a failed transfer. Msg is safe to show to a client;
// Err, when set, is the underlying error, for the server's log only.
type TransferError struct {
	Msg string
	Err error
}

func (e *TransferError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *TransferError) Unwrap() error { return e.Err }

func transferErr(err error, format string, args ...any) *TransferError {
	return &TransferError{Msg: fmt.Sprintf(format, args...), Err: err}
}

func poolOf(ca *x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

// ServerTLS is the importing side's TLS configuration: its own key, and
// client certificates verified against the exporting side's CA.
func ServerTLS(own *KeyPair, peerCA *x509.Certificate, now func() time.Time) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{own.TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    poolOf(peerCA),
		MinVersion:   tls.VersionTLS12,
		Time:         now,
	}
}

// ClientTLS is the exporting side's TLS configuration: its own key, and
// the server certificate verified against the importing side's CA for
// the name CertCN.
func ClientTLS(own *KeyPair, peerCA *x509.Certificate, now func() time.Time) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{own.TLS},
		RootCAs:      poolOf(peerCA),
		ServerName:   CertCN,
		MinVersion:   tls.VersionTLS12,
		Time:         now,
	}
}

// Receiver is the listening end of one disk of an import.
type Receiver struct {
	ln    net.Listener
	tls   *tls.Config
	magic string
	size  int64
}

// Listen opens the listener of one disk on address (port 0: any free
// port), expecting magic and a disk of size MiB.
func Listen(address string, cfg *tls.Config, magic string, size int64) (*Receiver, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(address, "0"))
	if err != nil {
		return nil, err
	}
	return &Receiver{ln: ln, tls: cfg, magic: magic, size: size}, nil
}

// Port is the port the receiver listens on.
func (r *Receiver) Port() int { return r.ln.Addr().(*net.TCPAddr).Port }

// Close closes the listener.
func (r *Receiver) Close() error { return r.ln.Close() }

// Events report the progress of a transfer; nil functions are skipped.
type Events struct {
	// Connected: the peer was verified, data follows.
	Connected func()
	// Refused: a connection that failed the TLS verification was closed
	// (the receiver goes on listening).
	Refused func(remote string, err error)
}

func (ev Events) connected() {
	if ev.Connected != nil {
		ev.Connected()
	}
}

func (ev Events) refused(remote string, err error) {
	if ev.Refused != nil {
		ev.Refused(remote, err)
	}
}

// Receive waits up to timeout for the exporting side to connect, then
// receives the disk. Connections that fail the TLS verification are
// refused and the receiver goes on listening; a verified peer that sends
// a wrong header fails the disk. The listener is closed on return.
func (r *Receiver) Receive(ctx context.Context, timeout time.Duration, ev Events) error {
	defer r.ln.Close()
	stop := context.AfterFunc(ctx, func() { r.ln.Close() })
	defer stop()
	deadline := time.Now().Add(timeout)
	if tl, ok := r.ln.(*net.TCPListener); ok {
		_ = tl.SetDeadline(deadline)
	}
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return transferErr(nil, "Not connected after %s seconds", seconds(timeout))
			}
			return transferErr(err, "Listening failed")
		}
		err = r.serve(ctx, c, ev)
		var refused *refusal
		if errors.As(err, &refused) {
			ev.refused(c.RemoteAddr().String(), refused.err)
			continue
		}
		return err
	}
}

// refusal is a connection that did not pass the TLS verification.
type refusal struct{ err error }

func (r *refusal) Error() string { return "refused: " + r.err.Error() }

func (r *Receiver) serve(ctx context.Context, c net.Conn, ev Events) error {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(IOTimeout))
	tc := tls.Server(c, r.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		return &refusal{err: err}
	}
	ev.connected()
	line, err := readLine(bufio.NewReader(tc))
	if err != nil {
		return transferErr(err, "Unexpected end of data")
	}
	magic, size, err := ParseHeader(line)
	if err != nil {
		reply(tc, "error invalid header")
		return transferErr(nil, "Invalid data received")
	}
	if !equalMagic(magic, r.magic) {
		reply(tc, "error magic mismatch")
		return transferErr(nil, "Magic value mismatch")
	}
	if size != r.size {
		reply(tc, "error size mismatch")
		return transferErr(nil, "Disk size mismatch: received %d MiB, expected %d MiB", size, r.size)
	}
	if err := reply(tc, "ok"); err != nil {
		return transferErr(err, "Sending the acknowledgement failed")
	}
	return nil
}

func reply(w io.Writer, s string) error {
	_, err := io.WriteString(w, s+"\n")
	return err
}

// readLine reads one line of at most maxHeader bytes, without its "\n".
func readLine(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for b.Len() <= maxHeader {
		c, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		if c == '\n' {
			return b.String(), nil
		}
		b.WriteByte(c)
	}
	return "", errors.New("line too long")
}

var hexMagic = regexp.MustCompile(`^[0-9a-f]{1,128}$`)

// Header is the header line of a disk.
func Header(magic string, size int64) string {
	return magic + " " + strconv.FormatInt(size, 10)
}

// ParseHeader parses a header line (untrusted input).
func ParseHeader(line string) (magic string, size int64, err error) {
	f := strings.Split(line, " ")
	if len(f) != 2 || !hexMagic.MatchString(f[0]) {
		return "", 0, errors.New("invalid header")
	}
	size, err = strconv.ParseInt(f[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != f[1] {
		return "", 0, errors.New("invalid header")
	}
	return f[0], size, nil
}

// Send sends one disk of size MiB to a destination: it connects, retrying
// until timeout (socat's retries in Ganeti's export daemon), verifies the
// importing side, sends the header and waits for the answer.
func Send(ctx context.Context, dest Destination, cfg *tls.Config, size int64, timeout time.Duration, ev Events) error {
	addr := net.JoinHostPort(dest.Host, dest.Port)
	deadline := time.Now().Add(timeout)
	var c net.Conn
	for {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return transferErr(nil, "Not connected after %s seconds", seconds(timeout))
		}
		d := net.Dialer{Timeout: min(remaining, connectAttempt)}
		var err error
		if c, err = d.DialContext(ctx, "tcp", addr); err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t := time.NewTimer(min(retryInterval, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	_ = c.SetDeadline(time.Now().Add(IOTimeout))
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return transferErr(err, "TLS handshake with the destination failed")
	}
	ev.connected()
	if err := reply(tc, Header(dest.Magic, size)); err != nil {
		return transferErr(err, "Sending data failed")
	}
	line, err := readLine(bufio.NewReader(tc))
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		// A TLS 1.3 server refuses a client certificate after the
		// client's handshake completed: the refusal shows here.
		return transferErr(err, "The destination closed the connection")
	case line == "ok":
		return nil
	case strings.HasPrefix(line, "error "):
		return transferErr(nil, "The destination refused the data (%s)", printable(strings.TrimPrefix(line, "error ")))
	}
	return transferErr(nil, "Unexpected answer from the destination")
}

// printable keeps a short, printable ASCII form of a peer's text.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			break
		}
		if r >= ' ' && r <= '~' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// seconds formats a timeout in seconds, as Ganeti's messages do.
func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
