package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// healthcheckTimeout bounds the whole check (connect, request, answer).
const healthcheckTimeout = 5 * time.Second

// healthcheck is the `ganeti-gateway healthcheck` subcommand, for a
// container's HEALTHCHECK (a scratch image has no shell or curl): it asks
// the admin listener's /healthz of the server running beside it and
// returns nil when the answer is 200. It reads the server's own
// --admin-listen setting (GANETI_GATEWAY_ADMIN_LISTEN), and dials loopback
// when that address is a bare port or an unspecified address (0.0.0.0, ::).
func healthcheck(args []string) error {
	fs := flag.NewFlagSet("ganeti-gateway healthcheck", flag.ContinueOnError)
	adminListen := fs.String("admin-listen", "", "the server's --admin-listen address, whose /healthz is asked")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ganeti-gateway healthcheck [--admin-listen ADDR]\n\n"+
			"Exits 0 when the admin listener's /healthz answers 200, else 1.\n"+
			"The address defaults to %s, as for the server.\n\n", envName("admin-listen"))
		fs.PrintDefaults()
	}
	if err := applyEnv(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck: unexpected argument %q", fs.Arg(0))
	}
	if *adminListen == "" {
		return fmt.Errorf("healthcheck: no admin listener: set --admin-listen or %s", envName("admin-listen"))
	}
	addr, err := server.AdminDialAddr(*adminListen)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", addr, resp.Status)
	}
	fmt.Fprintln(os.Stdout, "ok")
	return nil
}
