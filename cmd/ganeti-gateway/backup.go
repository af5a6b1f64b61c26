package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ganeti-gateway/ganeti-gateway/internal/atomicfile"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// backupCommand copies the store to a file: from the running server's
// admin listener (GET /backup: a read transaction, consistent, writers go
// on), or from the data dir of a stopped server (opened read-only). The
// copy is written to a temporary file, synced, verified with the store's
// own verifier, then renamed to its name: FILE is a complete, verified
// store or is not written.
func backupCommand(args []string, std stdio) error {
	fs := flag.NewFlagSet("ganeti-gateway backup", flag.ContinueOnError)
	output := fs.String("o", "", "the backup file to write (required)")
	admin := fs.String("admin", "", "the running server's admin listener (its --admin-listen; default "+envName("admin-listen")+")")
	dataDir := fs.String("data-dir", "", "the data dir of a stopped server (default "+envName("data-dir")+" when --admin is not given)")
	timeout := fs.Duration("timeout", server.BackupTimeout, "how long the copy may take")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ganeti-gateway backup -o FILE [--admin ADDR | --data-dir DIR]\n\n"+
			"Copies the store (state.db) to FILE, consistent as of one instant, and verifies the copy.\n"+
			"With --admin, from the running server's admin listener (GET /backup, loopback clients only);\n"+
			"with --data-dir, from a stopped server's data dir. To restore: stop the server, put FILE in the\n"+
			"data dir as state.db (mode 0600, the server's owner), start it.\n\n")
		fs.PrintDefaults()
	}
	var envAdmin string
	if v, ok := os.LookupEnv(envName("admin-listen")); ok {
		envAdmin = v
	}
	if err := parseFlags(fs, args, std); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("backup: unexpected argument %q", fs.Arg(0))
	}
	if *output == "" {
		return usageErrorf("backup: -o FILE is required")
	}
	if *admin != "" && *dataDir != "" {
		return usageErrorf("backup: --admin and --data-dir exclude each other")
	}
	if *admin == "" && *dataDir == "" {
		switch {
		case envAdmin != "":
			*admin = envAdmin
		case os.Getenv(envName("data-dir")) != "":
			*dataDir = os.Getenv(envName("data-dir"))
		default:
			return usageErrorf("backup: give --admin ADDR (a running server) or --data-dir DIR (a stopped one)")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var rep boltstore.Report
	var n int64
	err := writeVerified(*output, func(f *os.File) (err error) {
		if *admin != "" {
			n, err = fetchBackup(ctx, *admin, f)
			return err
		}
		sn, err := boltstore.OpenSnapshot(filepath.Join(*dataDir, boltstore.FileName))
		if errors.Is(err, boltstore.ErrInUse) {
			return fmt.Errorf("%w: a server runs on %s: use --admin with its --admin-listen address", err, *dataDir)
		}
		if err != nil {
			return err
		}
		defer sn.Close()
		n, err = sn.WriteTo(f)
		return err
	}, &rep)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(std.out, "wrote %s: %d bytes, %d buckets, %d records, verified\n", *output, n, rep.Buckets, rep.Keys)
	return nil
}

// writeVerified writes path atomically (mode 0600): fill writes it, and
// the copy must verify as a store before it is named path.
func writeVerified(path string, fill func(*os.File) error, rep *boltstore.Report) error {
	return atomicfile.Write(path, fill, func(tmp string) error {
		r, err := boltstore.Verify(tmp)
		if err != nil {
			return fmt.Errorf("the copy does not verify: %w", err)
		}
		if !r.Checksums {
			return errors.New("the copy is not a ganeti-gateway store (no format record)")
		}
		*rep = r
		return nil
	})
}

// fetchBackup copies GET http://<admin>/backup into w, checking that it
// got the whole Content-Length.
func fetchBackup(ctx context.Context, admin string, w io.Writer) (int64, error) {
	addr, err := dialAddr(admin)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/backup", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET http://%s/backup: %s: %s", addr, resp.Status, msg)
	}
	want, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("GET http://%s/backup: no Content-Length", addr)
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && n != want {
		err = fmt.Errorf("got %d bytes of %d", n, want)
	}
	return n, err
}

// dialAddr turns an --admin-listen value into an address to connect to:
// a bare port, or a wildcard host, is the loopback interface (where the
// server accepts backup clients).
func dialAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		host, port = "", listen
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", usageErrorf("backup: --admin %q: want host:port", listen)
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
