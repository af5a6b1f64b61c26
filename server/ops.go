package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	"github.com/ganeti-gateway/ganeti-gateway/internal/atomicfile"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/buildinfo"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
)

// The operator's commands besides serving (ganeti-gateway version, users,
// backup, healthcheck), so that the command imports only this package.

// More defaults, of the layers below.
const (
	DefaultMaxQueryBodyBytes   = gateway.DefaultMaxQueryBodyBytes
	DefaultMaxHeaderBytes      = gateway.DefaultMaxHeaderBytes
	DefaultMaxQueryFields      = service.DefaultMaxQueryFields
	DefaultMaxQueryResultBytes = service.DefaultMaxQueryResultBytes
	DefaultJobArchiveAfter     = jobs.DefaultArchiveAfter
	DefaultJobArchiveRetention = jobs.DefaultArchiveRetention
	DefaultJobQueueSize        = jobs.DefaultQueueSize
	DefaultIdempotencyKeyTTL   = jobs.DefaultIdempotencyTTL
	DefaultMaxOpcodesPerJob    = jobs.DefaultMaxOpsPerJob
)

// BuildInfo describes the running binary.
type BuildInfo = buildinfo.Info

// Build returns the binary's version, commit and build date.
func Build() BuildInfo { return buildinfo.Get() }

// TrustedProxies are the reverse proxies whose forwarding headers name a
// request's client (a flag.Value).
type TrustedProxies = gateway.TrustedProxies

// AdminDialAddr is the address to connect to for an --admin-listen value:
// the server's own rule (a bare port, with or without its colon, binds
// loopback), and loopback for an unspecified host, which the server binds
// on every interface.
func AdminDialAddr(adminListen string) (string, error) {
	if _, err := strconv.ParseUint(adminListen, 10, 16); err == nil {
		adminListen = ":" + adminListen
	}
	host, port, err := net.SplitHostPort(adminListen)
	if err != nil {
		return "", fmt.Errorf("admin address %q: want host:port", adminListen)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("admin address %q: bad port", adminListen)
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

// UserEdit is a change of the RAPI users file: add a user (Add) with the
// given options, or set a user's password.
type UserEdit struct {
	// Path is the users file.
	Path string
	Name string
	// Add adds the user (with Read, Write, Admin); otherwise the user's
	// password is set.
	Add                bool
	Read, Write, Admin bool
}

// CheckUserName checks a user name as Ganeti's users file takes it.
func CheckUserName(name string) error { return auth.CheckUserName(name) }

func (e UserEdit) edit(password string) func([]byte) ([]byte, error) {
	if !e.Add {
		return func(data []byte) ([]byte, error) { return auth.SetPassword(data, e.Name, password) }
	}
	var options []string
	for _, o := range []struct {
		set  bool
		name string
	}{{e.Read, auth.OptionRead}, {e.Write, auth.OptionWrite}, {e.Admin, auth.OptionAdmin}} {
		if o.set {
			options = append(options, o.name)
		}
	}
	return func(data []byte) ([]byte, error) { return auth.AddUser(data, e.Name, password, options) }
}

// Check tells whether the edit can be made (the file readable, absent
// only for an add; the user absent for an add, present otherwise) before
// a password is asked for.
func (e UserEdit) Check() error {
	data, err := os.ReadFile(e.Path)
	if err != nil && !(e.Add && errors.Is(err, os.ErrNotExist)) {
		return err
	}
	if _, err := e.edit("")(data); err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	return nil
}

// Apply makes the edit with password (stored as its {HA1} hash), replacing
// the file atomically with its mode and owner.
func (e UserEdit) Apply(password string) error {
	if err := auth.UpdateUsersFile(e.Path, e.edit(password)); err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	return nil
}

// BackupResult describes a written backup.
type BackupResult struct {
	Bytes   int64
	Buckets int
	Keys    int64
}

// ErrStoreInUse is the error of a backup from the data dir of a running
// server.
var ErrStoreInUse = boltstore.ErrInUse

// Backup writes a consistent copy of the store to output (atomically, mode
// 0600, verified as a store before it is named output): from a running
// server's admin listener (admin, an --admin-listen value) or from the
// data dir of a stopped one (dataDir).
func Backup(ctx context.Context, output, admin, dataDir string) (BackupResult, error) {
	var res BackupResult
	err := atomicfile.Write(output, func(f *os.File) (err error) {
		if admin != "" {
			res.Bytes, err = fetchBackup(ctx, admin, f)
			return err
		}
		sn, err := boltstore.OpenSnapshot(filepath.Join(dataDir, boltstore.FileName))
		if err != nil {
			return err
		}
		defer sn.Close()
		res.Bytes, err = sn.WriteTo(f)
		return err
	}, func(tmp string) error {
		r, err := boltstore.Verify(tmp)
		if err != nil {
			return fmt.Errorf("the copy does not verify: %w", err)
		}
		if !r.Checksums {
			return errors.New("the copy is not a ganeti-gateway store (no format record)")
		}
		res.Buckets, res.Keys = r.Buckets, r.Keys
		return nil
	})
	return res, err
}

// fetchBackup copies GET http://<admin>/backup into w, checking that it
// got the whole Content-Length.
func fetchBackup(ctx context.Context, admin string, w io.Writer) (int64, error) {
	addr, err := AdminDialAddr(admin)
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
