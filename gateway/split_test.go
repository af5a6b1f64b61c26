package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/ganeti-gateway/ganeti-gateway/internal/selfsigned"
)

func frame(typ, flags byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags, 0, 0, 0, 1}, payload...)
}

// oneByte reads one byte at a time.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

// The splitter's SETTINGS acknowledgement is taken out of the client's
// stream, and nothing else: a frame whose payload looks like one, a second
// acknowledgement, however the stream is cut.
func TestAckFilter(t *testing.T) {
	ack := frame(frameSettings, flagAck, nil)
	pieces := [][]byte{[]byte(h2Preface), frame(frameSettings, 0, []byte{0, 3, 0, 0, 0, 100}),
		frame(0x8, 0, []byte{0, 0, 0, 1}), frame(0x0, 0, ack), frame(frameHeaders, flagEndHeaders, []byte{0x82}), ack}
	var in, want bytes.Buffer
	for i, b := range pieces {
		if i == 4 {
			in.Write(ack) // the splitter's: dropped
		}
		in.Write(b)
		want.Write(b)
	}
	for _, r := range []io.Reader{bytes.NewReader(in.Bytes()), oneByte{bytes.NewReader(in.Bytes())}} {
		got, err := io.ReadAll(&ackFilter{r: r, pass: len(h2Preface)})
		if err != nil || !bytes.Equal(got, want.Bytes()) {
			t.Errorf("filtered %q (%v), want %q", got, err, want.Bytes())
		}
	}
}

// One port, plain and TLS: HTTP/1.1 and HTTP/2 requests reach the HTTP
// server (with the TLS state), gRPC connections grpc-go's transport (with
// the TLS state as the peer's AuthInfo and the client's address).
func TestSplit(t *testing.T) {
	cert, err := selfsigned.LoadOrCreate(t.TempDir(), []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	for _, withTLS := range []bool{false, true} {
		var tlsConfig *tls.Config
		if withTLS {
			tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gl, hl := Split(lis, tlsConfig, 0)
		var gotPeer *peer.Peer
		gs := grpc.NewServer(grpc.Creds(SplitCredentials()), grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			gotPeer, _ = peer.FromContext(ctx)
			return h(ctx, req)
		}))
		healthpb.RegisterHealthServer(gs, health.NewServer())
		go func() { _ = gs.Serve(gl) }()
		hs := NewHTTPServer(SamePort(gs, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Proto)
			if r.TLS != nil {
				_, _ = io.WriteString(w, " tls")
			}
		})), tlsConfig, Timeouts{})
		go func() { _ = hs.Serve(hl) }()

		scheme := "http://"
		creds := insecure.NewCredentials()
		clientTLS := &tls.Config{InsecureSkipVerify: true}
		if withTLS {
			scheme = "https://"
			creds = credentials.NewTLS(clientTLS)
		}
		for _, h2 := range []bool{false, true} {
			tr := &http.Transport{Protocols: new(http.Protocols), TLSClientConfig: clientTLS}
			switch {
			case !h2:
				tr.Protocols.SetHTTP1(true)
			case withTLS:
				tr.Protocols.SetHTTP2(true)
			default:
				tr.Protocols.SetUnencryptedHTTP2(true)
			}
			for range 2 { // the second request reuses the connection
				resp, err := (&http.Client{Transport: tr}).Get(scheme + lis.Addr().String() + "/x")
				if err != nil {
					t.Fatalf("tls %v h2 %v: %v", withTLS, h2, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]
				if withTLS {
					want += " tls"
				}
				if string(b) != want {
					t.Errorf("tls %v h2 %v: %q, want %q", withTLS, h2, b, want)
				}
			}
			tr.CloseIdleConnections()
		}
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatalf("tls %v: gRPC: %v", withTLS, err)
			}
		}
		_, isTLS := gotPeer.AuthInfo.(credentials.TLSInfo)
		if gotPeer == nil || isTLS != withTLS || gotPeer.Addr.String() == lis.Addr().String() || IsInProcess(peer.NewContext(context.Background(), gotPeer)) {
			t.Errorf("tls %v: gRPC peer %+v", withTLS, gotPeer)
		}
		conn.Close()
		_ = hs.Close()
		gs.Stop()
	}
}
