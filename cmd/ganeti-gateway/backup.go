package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

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
	res, err := server.Backup(ctx, *output, *admin, *dataDir)
	if errors.Is(err, server.ErrStoreInUse) {
		err = fmt.Errorf("%w: a server runs on %s: use --admin with its --admin-listen address", err, *dataDir)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(std.out, "wrote %s: %d bytes, %d buckets, %d records, verified\n", *output, res.Bytes, res.Buckets, res.Keys)
	return nil
}
