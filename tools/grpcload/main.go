// Command grpcload puts keep-alive load on ClusterService.GetInfo over gRPC
// (TLS without verification, or plain h2c with -insecure), one client
// connection per worker, Basic credentials as metadata, and prints one line
// in the format of ../shared/perf/loadgen's http mode (req/s, p50, p99), so
// that it can run side by side with the legacy GET /2/info.
//
//	grpcload -addr 127.0.0.1:5080 -c 16 -d 5s -user pr -pass prp -label 'gw GetInfo'
package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5080", "host:port of the gateway")
	c := flag.Int("c", 1, "connections (one worker each)")
	d := flag.Duration("d", 5*time.Second, "duration")
	user := flag.String("user", "", "Basic user")
	pass := flag.String("pass", "", "Basic password")
	plain := flag.Bool("insecure", false, "plain HTTP/2 (h2c) instead of TLS")
	label := flag.String("label", "grpc GetInfo", "label printed first")
	flag.Parse()
	creds := credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a load tool against a self-signed server
	if *plain {
		creds = insecure.NewCredentials()
	}
	ctx := context.Background()
	if *user != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization",
			"Basic "+base64.StdEncoding.EncodeToString([]byte(*user+":"+*pass)))
	}
	clients := make([]rapiv2.ClusterServiceClient, *c)
	for i := range clients {
		conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer conn.Close()
		clients[i] = rapiv2.NewClusterServiceClient(conn)
		// Connect (and check the credentials) before the clock starts.
		if _, err := clients[i].GetInfo(ctx, &rapiv2.GetInfoRequest{}); err != nil {
			fmt.Fprintln(os.Stderr, "grpcload:", err)
			os.Exit(1)
		}
	}
	var ok, bad atomic.Int64
	lats := make([][]time.Duration, *c)
	deadline := time.Now().Add(*d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				_, err := clients[w].GetInfo(ctx, &rapiv2.GetInfoRequest{})
				lats[w] = append(lats[w], time.Since(t0))
				if err != nil {
					bad.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	fmt.Printf("%s\tgrpc\tc=%d\treq/s=%.1f\tp50_ms=%.3f\tp99_ms=%.3f\tmax_ms=%.3f\tok=%d\tbad=%d\n", *label, *c,
		float64(ok.Load())/el, pct(all, .5), pct(all, .99), pct(all, 1), ok.Load(), bad.Load())
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(float64(len(sorted)-1)*p)].Microseconds()) / 1000
}
