package impexp

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// transfer runs one receiver and one sender and returns their errors.
type transferCase struct {
	srvKey, srvCA *KeyPair // the receiver's key; the CA it trusts
	cliKey, cliCA *KeyPair // the sender's key; the CA it trusts
	sendMagic     string
	sendSize      int64
	timeout       time.Duration
}

func runTransfer(t *testing.T, tc transferCase) (refused int32, recvErr, sendErr error) {
	t.Helper()
	const magic = "00ff"
	rc, err := Listen("127.0.0.1", ServerTLS(tc.srvKey, tc.srvCA.Cert, time.Now), magic, 1024)
	if err != nil {
		t.Fatal(err)
	}
	var nRefused atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- rc.Receive(context.Background(), tc.timeout, Events{Refused: func(string, error) { nRefused.Add(1) }})
	}()
	sendMagic, size := tc.sendMagic, tc.sendSize
	if sendMagic == "" {
		sendMagic = magic
	}
	if size == 0 {
		size = 1024
	}
	dest := Destination{Host: "127.0.0.1", Port: strconv.Itoa(rc.Port()), Magic: sendMagic}
	sendErr = Send(context.Background(), dest, ClientTLS(tc.cliKey, tc.cliCA.Cert, time.Now), size, 2*time.Second, Events{})
	recvErr = <-done
	return nRefused.Load(), recvErr, sendErr
}

func msgOf(err error) string {
	var te *TransferError
	if errors.As(err, &te) {
		return te.Msg
	}
	if err == nil {
		return ""
	}
	return "unexpected: " + err.Error()
}

func TestTransfer(t *testing.T) {
	now := time.Now()
	src, dst, stranger := testKey(t, now, CertValidity), testKey(t, now, CertValidity), testKey(t, now, CertValidity)
	expired := testKey(t, now.Add(-48*time.Hour), CertValidity)
	short := 700 * time.Millisecond
	for _, tc := range []struct {
		name           string
		c              transferCase
		recv, send     string // messages; "" for success
		refusedAtLeast int32
	}{
		{"good", transferCase{srvKey: dst, srvCA: src, cliKey: src, cliCA: dst, timeout: 5 * time.Second}, "", "", 0},
		{"sender not trusted", transferCase{srvKey: dst, srvCA: src, cliKey: stranger, cliCA: dst, timeout: short},
			"Not connected after 0.7 seconds", "The destination closed the connection", 1},
		{"sender's key expired", transferCase{srvKey: dst, srvCA: expired, cliKey: expired, cliCA: dst, timeout: short},
			"Not connected after 0.7 seconds", "The destination closed the connection", 1},
		{"receiver not trusted", transferCase{srvKey: stranger, srvCA: src, cliKey: src, cliCA: dst, timeout: short},
			"Not connected after 0.7 seconds", "TLS handshake with the destination failed", 1},
		{"wrong magic", transferCase{srvKey: dst, srvCA: src, cliKey: src, cliCA: dst, sendMagic: "00fe", timeout: 5 * time.Second},
			"Magic value mismatch", "The destination refused the data (magic mismatch)", 0},
		{"wrong size", transferCase{srvKey: dst, srvCA: src, cliKey: src, cliCA: dst, sendSize: 1023, timeout: 5 * time.Second},
			"Disk size mismatch: received 1023 MiB, expected 1024 MiB", "The destination refused the data (size mismatch)", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused, recvErr, sendErr := runTransfer(t, tc.c)
			if got := msgOf(recvErr); got != tc.recv {
				t.Errorf("receiver: %q (%v), want %q", got, recvErr, tc.recv)
			}
			if got := msgOf(sendErr); got != tc.send {
				t.Errorf("sender: %q (%v), want %q", got, sendErr, tc.send)
			}
			if refused < tc.refusedAtLeast {
				t.Errorf("%d connections refused, want at least %d", refused, tc.refusedAtLeast)
			}
		})
	}
}

// A refused connection does not end the import: the right peer can still
// connect.
func TestTransferAfterRefusal(t *testing.T) {
	now := time.Now()
	src, dst, stranger := testKey(t, now, CertValidity), testKey(t, now, CertValidity), testKey(t, now, CertValidity)
	rc, err := Listen("127.0.0.1", ServerTLS(dst, src.Cert, time.Now), "abc", 5)
	if err != nil {
		t.Fatal(err)
	}
	connected := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- rc.Receive(context.Background(), 5*time.Second, Events{Connected: func() { connected <- struct{}{} }})
	}()
	dest := Destination{Host: "127.0.0.1", Port: strconv.Itoa(rc.Port()), Magic: "abc"}
	if err := Send(context.Background(), dest, ClientTLS(stranger, dst.Cert, time.Now), 5, time.Second, Events{}); err == nil {
		t.Fatal("a stranger's export succeeded")
	}
	// A plain TCP connection that sends garbage is refused too.
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", dest.Port)); err == nil {
		_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		c.Close()
	}
	if err := Send(context.Background(), dest, ClientTLS(src, dst.Cert, time.Now), 5, time.Second, Events{}); err != nil {
		t.Fatalf("export: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("import: %v", err)
	}
	select {
	case <-connected:
	default:
		t.Error("no Connected event")
	}
}

func TestTransferTimeouts(t *testing.T) {
	now := time.Now()
	src, dst := testKey(t, now, CertValidity), testKey(t, now, CertValidity)
	// Nobody listens: the export gives up after its connect timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	start := time.Now()
	err = Send(context.Background(), Destination{Host: "127.0.0.1", Port: port, Magic: "ab"}, ClientTLS(src, dst.Cert, time.Now), 1, 1500*time.Millisecond, Events{})
	if msgOf(err) != "Not connected after 1.5 seconds" || time.Since(start) > 5*time.Second {
		t.Errorf("export to nobody: %v after %v", err, time.Since(start))
	}
	// The import is canceled: Receive returns at once.
	rc, err := Listen("127.0.0.1", ServerTLS(dst, src.Cert, time.Now), "ab", 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rc.Receive(ctx, time.Minute, Events{}) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("canceled import: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a canceled import still waits")
	}
}

func TestParseHeader(t *testing.T) {
	for line, ok := range map[string]bool{
		"00ff 1024": true, "00ff 0": true, Header(DiskMagic("a", "b", 0), 30720): true,
		"": false, "00ff": false, "00ff  1": false, "00FF 1": false, "00ff -1": false, "00ff +1": false,
		"00ff 01": false, "zz 1": false, "00ff 1 2": false, "00ff 99999999999999999999": false,
	} {
		magic, size, err := ParseHeader(line)
		if (err == nil) != ok {
			t.Errorf("ParseHeader(%q) = %q, %d, %v", line, magic, size, err)
		}
		if ok && Header(magic, size) != line {
			t.Errorf("Header(ParseHeader(%q)) = %q", line, Header(magic, size))
		}
	}
}
