package luxi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// Defaults of a Client.
const (
	DefaultMaxConns    = 8
	DefaultCallTimeout = 8 * time.Second
	DefaultMaxMessage  = 256 << 20
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Socket is the path of luxid's unix socket.
	Socket string
	// MaxConns caps the connections open at once, idle or busy (and so
	// the calls in flight): DefaultMaxConns when 0.
	MaxConns int
	// CallTimeout bounds one call (besides the wait of WaitForJobChange):
	// DefaultCallTimeout when 0.
	CallTimeout time.Duration
	// MaxMessage is the largest answer accepted, in bytes:
	// DefaultMaxMessage when 0.
	MaxMessage int
}

// Client calls luxi methods over a pool of connections. It is safe for
// concurrent use.
type Client struct {
	cfg   ClientConfig
	slots chan struct{} // one token per open connection
	idle  chan *conn
}

type conn struct {
	nc net.Conn
	r  *bufio.Reader
}

// NewClient returns a client of the socket in cfg; it connects on demand.
func NewClient(cfg ClientConfig) *Client {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	return &Client{cfg: cfg, slots: make(chan struct{}, cfg.MaxConns), idle: make(chan *conn, cfg.MaxConns)}
}

// Close closes the idle connections; busy ones close when their call ends.
func (c *Client) Close() error {
	for {
		select {
		case cn := <-c.idle:
			cn.nc.Close()
			<-c.slots
		default:
			return nil
		}
	}
}

// errUnavailable is what a client sees of a transport failure.
func errUnavailable() error {
	return errs.Unavailable("The Ganeti master daemon (luxid) is unavailable")
}

// TransportError is a failure to reach luxid or to read its answer; it
// wraps the cause and unwraps to the domain error a client sees.
type TransportError struct {
	Method string
	Err    error
}

func (e *TransportError) Error() string { return "luxi " + e.Method + ": " + e.Err.Error() }

func (e *TransportError) Unwrap() []error { return []error{e.Err, errUnavailable()} }

// Call calls method with args and decodes its result into out (when not
// nil). extra lengthens the call's timeout (the wait of a
// WaitForJobChange). A cancelled ctx closes the connection and returns
// ctx's error.
func (c *Client) Call(ctx context.Context, method string, args []any, extra time.Duration, out any) error {
	req, err := encodeRequest(method, args)
	if err != nil {
		return err
	}
	cn, err := c.get(ctx)
	if err != nil {
		return err
	}
	res, err := c.roundTrip(ctx, cn, req, c.cfg.CallTimeout+extra)
	if err != nil {
		c.discard(cn)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		var de *domainError
		if errors.As(err, &de) {
			return err
		}
		return &TransportError{Method: method, Err: err}
	}
	c.put(cn)
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			return &TransportError{Method: method, Err: &ProtocolError{Msg: fmt.Sprintf("unexpected result: %v", err)}}
		}
	}
	return nil
}

func (c *Client) roundTrip(ctx context.Context, cn *conn, req []byte, timeout time.Duration) (json.RawMessage, error) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := cn.nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { cn.nc.Close() })
	_, err := cn.nc.Write(req)
	var msg []byte
	if err == nil {
		msg, err = readMessage(cn.r, c.cfg.MaxMessage)
	}
	if !stop() {
		// ctx ended and closed the connection, maybe after the answer:
		// the caller discards it.
		return nil, context.Cause(ctx)
	}
	if err != nil {
		return nil, err
	}
	return decodeResponse(msg)
}

// readMessage reads one message up to its 0x03 (which it drops), refusing
// one longer than max bytes.
func readMessage(r *bufio.Reader, max int) ([]byte, error) {
	var msg []byte
	for {
		chunk, err := r.ReadSlice(eom)
		if len(msg)+len(chunk) > max+1 {
			return nil, &ProtocolError{Msg: fmt.Sprintf("answer longer than %d bytes", max)}
		}
		msg = append(msg, chunk...)
		switch {
		case err == nil:
			return msg[:len(msg)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(msg) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		default:
			return nil, err
		}
	}
}

// get takes an idle connection or opens one, waiting for a free slot.
func (c *Client) get(ctx context.Context) (*conn, error) {
	select {
	case cn := <-c.idle:
		return cn, nil
	default:
	}
	select {
	case cn := <-c.idle:
		return cn, nil
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	nc, err := d.DialContext(dctx, "unix", c.cfg.Socket)
	if err != nil {
		<-c.slots
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, &TransportError{Method: "connect", Err: err}
	}
	return &conn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10)}, nil
}

func (c *Client) put(cn *conn) {
	select {
	case c.idle <- cn:
	default: // cannot happen: idle holds as many as slots
		c.discard(cn)
	}
}

func (c *Client) discard(cn *conn) {
	cn.nc.Close()
	<-c.slots
}
