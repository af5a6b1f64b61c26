package main

import (
	"flag"
	"fmt"

	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// versionCommand prints the one line of server.Build.
func versionCommand(args []string, std stdio) error {
	fs := flag.NewFlagSet("ganeti-gateway version", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: ganeti-gateway version\n\nPrints the version, commit and build date (stamped by make build).")
	}
	if err := parseFlags(fs, args, std); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("version: unexpected argument %q", fs.Arg(0))
	}
	_, err := fmt.Fprintln(std.out, server.Build())
	return err
}

// parseInterleaved parses args into fs allowing flags after positional
// arguments ("users add NAME --write"); it returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string, std stdio) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args, std); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		rest := fs.Args()
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil // all after "--"
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// envDefaults sets the named flags of fs from the server's environment
// variables (GANETI_GATEWAY_DATA_DIR...), so that a subcommand run in the
// server's environment finds its files; flags given win.
func envDefaults(fs *flag.FlagSet, names ...string) error {
	sub := flag.NewFlagSet("", flag.ContinueOnError)
	for _, n := range names {
		if f := fs.Lookup(n); f != nil {
			sub.Var(f.Value, n, "")
		}
	}
	return applyEnv(sub)
}
