package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Connections of the one port are split between grpc-go's own HTTP/2
// transport and the HTTP server, after the TLS handshake: an HTTP/2
// connection whose first request has an application/grpc content type is
// a gRPC connection (served by grpc.Server.Serve, several times faster
// than grpc.Server.ServeHTTP); every other connection (HTTP/1.1, HTTP/2 of
// the legacy surface) goes to the HTTP server. A gRPC request that comes
// later on an HTTP connection is still served, through SamePortWith.

// h2Preface is the client connection preface of HTTP/2.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// maxSniff bounds what is read of a connection to find its first request.
const maxSniff = 256 << 10

// HTTP/2 frame types and flags the splitter reads.
const (
	frameHeaders      = 0x1
	frameSettings     = 0x4
	frameContinuation = 0x9
	flagAck           = 0x1
	flagEndHeaders    = 0x4
	flagPadded        = 0x8
	flagPriority      = 0x20
)

// emptySettings is the SETTINGS frame the splitter sends once it has read
// a client preface: gRPC clients wait for the server's SETTINGS before
// their first request. Its acknowledgement is taken out of the stream (see
// ackFilter), so the server behind sees only its own.
var emptySettings = []byte{0, 0, 0, frameSettings, 0, 0, 0, 0, 0}

// Split accepts the connections of lis and splits them (see above): the
// returned listeners give the gRPC and the HTTP connections. With
// tlsConfig, Split does the TLS handshake; the HTTP listener gives
// HTTP/1.1 connections as the *tls.Conn and HTTP/2 ones as prior-knowledge
// HTTP/2 (h2c) connections that carry the TLS state (ConnContext, for the
// server's ConnContext, puts it back on the requests). timeout bounds the
// handshake and the first request (0: 10s). Closing either listener closes
// lis.
func Split(lis net.Listener, tlsConfig *tls.Config, timeout time.Duration) (grpcLis, httpLis net.Listener) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	s := &splitter{lis: lis, tls: tlsConfig, timeout: timeout, done: make(chan struct{}),
		grpc: make(chan net.Conn), http: make(chan net.Conn)}
	go s.run()
	return &splitListener{s: s, ch: s.grpc}, &splitListener{s: s, ch: s.http}
}

type splitter struct {
	lis       net.Listener
	tls       *tls.Config
	timeout   time.Duration
	grpc      chan net.Conn
	http      chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	err       error // why run ended (after done is closed)
}

// close ends the splitter; err (set before done is closed) is what Accept
// returns then.
func (s *splitter) close(err error) {
	s.closeOnce.Do(func() {
		s.err = err
		close(s.done)
		_ = s.lis.Close()
	})
}

func (s *splitter) run() {
	for {
		c, err := s.lis.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			s.close(err)
			return
		}
		go s.classify(c)
	}
}

// classify hands c to one of the listeners (or closes it).
func (s *splitter) classify(raw net.Conn) {
	_ = raw.SetDeadline(time.Now().Add(s.timeout))
	var c net.Conn = raw
	var state *tls.ConnectionState
	if s.tls != nil {
		tc := tls.Server(raw, s.tls)
		if err := tc.Handshake(); err != nil {
			_ = raw.Close()
			return
		}
		st := tc.ConnectionState()
		if st.NegotiatedProtocol != "h2" {
			_ = raw.SetDeadline(time.Time{})
			s.hand(s.http, tc)
			return
		}
		c, state = tc, &st
	}
	sniffed, isGRPC, h2, err := sniff(c, state != nil)
	if err != nil {
		_ = c.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	sc := &splitConn{Conn: c, tls: state}
	if h2 {
		sc.r = &ackFilter{r: io.MultiReader(bytes.NewReader(sniffed), c), pass: len(h2Preface)}
	} else {
		sc.r = io.MultiReader(bytes.NewReader(sniffed), c)
	}
	if isGRPC {
		s.hand(s.grpc, sc)
	} else {
		s.hand(s.http, sc)
	}
}

func (s *splitter) hand(ch chan net.Conn, c net.Conn) {
	select {
	case ch <- c:
	case <-s.done:
		_ = c.Close()
	}
}

// sniff reads c up to the end of the first HEADERS block of an HTTP/2
// connection (h2 set: the TLS handshake chose it; else the preface tells)
// and reports whether it is a gRPC request; it returns what it read.
func sniff(c net.Conn, h2 bool) (read []byte, isGRPC, isH2 bool, err error) {
	buf := make([]byte, 0, 4096)
	need := func(n int) error {
		for len(buf) < n {
			if n > maxSniff {
				return errors.New("gateway: no request in the first bytes")
			}
			if cap(buf)-len(buf) < 1024 {
				bigger := make([]byte, len(buf), 2*cap(buf))
				copy(bigger, buf)
				buf = bigger
			}
			k, err := c.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+k]
			if err != nil && len(buf) < n {
				return err
			}
		}
		return nil
	}
	if !h2 {
		// Plain HTTP: HTTP/1.1 unless it begins with the HTTP/2 preface.
		for i := 0; i < len(h2Preface); i++ {
			if err := need(i + 1); err != nil {
				return buf, false, false, err
			}
			if buf[i] != h2Preface[i] {
				return buf, false, false, nil
			}
		}
	} else if err := need(len(h2Preface)); err != nil || string(buf[:len(h2Preface)]) != h2Preface {
		return buf, false, true, errors.New("gateway: no HTTP/2 preface")
	}
	if _, err := c.Write(emptySettings); err != nil {
		return buf, false, true, err
	}
	var (
		ct    string
		block []byte
	)
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == "content-type" {
			ct = f.Value
		}
	})
	off := len(h2Preface)
	for {
		if err := need(off + 9); err != nil {
			return buf, false, true, err
		}
		length := int(binary.BigEndian.Uint32(append([]byte{0}, buf[off:off+3]...)))
		typ, flags := buf[off+3], buf[off+4]
		if err := need(off + 9 + length); err != nil {
			return buf, false, true, err
		}
		payload := buf[off+9 : off+9+length]
		off += 9 + length
		switch typ {
		case frameHeaders:
			if flags&flagPadded != 0 {
				if len(payload) < 1 || int(payload[0]) >= len(payload) {
					return buf, false, true, errors.New("gateway: bad HEADERS padding")
				}
				payload = payload[1 : len(payload)-int(payload[0])]
			}
			if flags&flagPriority != 0 {
				if len(payload) < 5 {
					return buf, false, true, errors.New("gateway: bad HEADERS priority")
				}
				payload = payload[5:]
			}
			block = append(block, payload...)
		case frameContinuation:
			if block == nil {
				return buf, false, true, errors.New("gateway: CONTINUATION without HEADERS")
			}
			block = append(block, payload...)
		default:
			continue
		}
		if flags&flagEndHeaders != 0 {
			if _, err := dec.Write(block); err != nil {
				return buf, false, true, err
			}
			return buf, strings.HasPrefix(ct, "application/grpc"), true, nil
		}
	}
}

// splitConn is a connection handed on by the splitter: it reads what the
// splitter read first, and carries the TLS state of the handshake. It has
// no ConnectionState method: net/http would then not serve it as HTTP/2
// with prior knowledge (ConnContext passes the state instead).
type splitConn struct {
	net.Conn
	r   io.Reader
	tls *tls.ConnectionState
}

func (c *splitConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// ackFilter passes an HTTP/2 client stream (after pass bytes of preface)
// but for the first SETTINGS acknowledgement, which answers the
// splitter's emptySettings.
type ackFilter struct {
	r      io.Reader
	pass   int // bytes to pass as they are (preface, payload)
	hdr    [9]byte
	hn     int
	done   bool // the acknowledgement was dropped
	out    []byte
	outBuf []byte
}

func (f *ackFilter) Read(p []byte) (int, error) {
	for {
		if len(f.out) > 0 {
			n := copy(p, f.out)
			f.out = f.out[n:]
			return n, nil
		}
		if f.done {
			return f.r.Read(p)
		}
		if cap(f.outBuf) < len(p)+9 {
			f.outBuf = make([]byte, 0, len(p)+9)
		}
		in := make([]byte, len(p))
		n, err := f.r.Read(in)
		f.out = f.filter(in[:n], f.outBuf[:0])
		if len(f.out) == 0 && err != nil {
			return 0, err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			// Return what there is; the error comes again on the next read.
			n := copy(p, f.out)
			f.out = f.out[n:]
			return n, nil
		}
	}
}

// filter appends to out what of in passes.
func (f *ackFilter) filter(in, out []byte) []byte {
	for len(in) > 0 {
		if f.done {
			return append(out, in...)
		}
		if f.pass > 0 {
			k := min(f.pass, len(in))
			out = append(out, in[:k]...)
			f.pass -= k
			in = in[k:]
			continue
		}
		k := copy(f.hdr[f.hn:], in)
		f.hn += k
		in = in[k:]
		if f.hn < len(f.hdr) {
			continue
		}
		f.hn = 0
		length := int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
		if f.hdr[3] == frameSettings && f.hdr[4]&flagAck != 0 && length == 0 {
			f.done = true
			continue
		}
		out = append(out, f.hdr[:]...)
		f.pass = length
	}
	return out
}

type splitListener struct {
	s  *splitter
	ch chan net.Conn
}

func (l *splitListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.s.done:
		if l.s.err != nil && !errors.Is(l.s.err, net.ErrClosed) {
			return nil, l.s.err
		}
		return nil, net.ErrClosed
	}
}

func (l *splitListener) Close() error { l.s.close(nil); return nil }

func (l *splitListener) Addr() net.Addr { return l.s.lis.Addr() }

type connTLSKey struct{}

// ConnContext is the HTTP server's ConnContext: the TLS state of a
// connection the splitter handed on as HTTP/2 with prior knowledge, for
// the requests of that connection (see withConnTLS).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if sc, ok := c.(*splitConn); ok && sc.tls != nil {
		return context.WithValue(ctx, connTLSKey{}, sc.tls)
	}
	return ctx
}

// withConnTLS sets r.TLS from the connection's TLS state (ConnContext).
func withConnTLS(ctx context.Context, tlsState **tls.ConnectionState) {
	if *tlsState != nil {
		return
	}
	if st, ok := ctx.Value(connTLSKey{}).(*tls.ConnectionState); ok {
		*tlsState = st
	}
}

// SplitCredentials are the gRPC server's transport credentials for the
// connections of Split: the TLS state of the splitter's handshake (client
// certificates included) as credentials.TLSInfo; other connections (h2c,
// the in-process one) as insecure.
func SplitCredentials() credentials.TransportCredentials { return splitCreds{} }

type splitCreds struct{}

var plainCreds = insecure.NewCredentials()

func (splitCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if sc, ok := c.(*splitConn); ok && sc.tls != nil {
		return c, credentials.TLSInfo{State: *sc.tls, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
	}
	return plainCreds.ServerHandshake(c)
}

func (splitCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("gateway: SplitCredentials are server credentials")
}

func (splitCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c splitCreds) Clone() credentials.TransportCredentials { return c }

func (splitCreds) OverrideServerName(string) error { return nil }
