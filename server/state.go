package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/atomicfile"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/selfsigned"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
)

// A store that is missing or damaged is refused, never re-created: a new
// store would be a new demo cluster whose job ids start again at 1, so the
// ids clients hold would name other jobs. The data dir tells a first start
// from a lost store: the marker written once the store was first seeded
// (MarkerFile), and the files a server creates at its first start (the
// users file it generated, the self-signed certificate, the cluster domain
// secret, the X509 keys of move-instance).

// MarkerFile is written in the data dir once the store holds a cluster.
const MarkerFile = boltstore.FileName + ".marker"

// ErrStoreRefused is wrapped by the error New returns when it refuses the
// store (a *StoreError).
var ErrStoreRefused = errors.New("store refused")

// StoreError is a store New refuses to use.
type StoreError struct {
	Path string
	// Problem is "missing", "empty" (0 bytes), "blank" (a store file that
	// holds no data) or "damaged".
	Problem string
	// Evidence lists what shows that the data dir was used before (for
	// missing, empty and blank).
	Evidence []string
	// Err is the damage (wrapping store.ErrCorrupt).
	Err error
}

func (e *StoreError) Error() string {
	var b strings.Builder
	b.WriteString("refusing to start: ")
	switch e.Problem {
	case "damaged":
		var de *boltstore.DamageError
		var ce *store.CorruptError
		switch {
		case errors.As(e.Err, &de):
			b.WriteString(de.Error())
		case errors.As(e.Err, &ce):
			fmt.Fprintf(&b, "%s is damaged: record %s/%s: %v", e.Path, ce.Bucket, ce.Key, ce.Err)
		default:
			fmt.Fprintf(&b, "%s is damaged: %v", e.Path, e.Err)
		}
	default:
		what := map[string]string{"missing": "is missing", "empty": "is empty (0 bytes)", "blank": "holds no data"}[e.Problem]
		fmt.Fprintf(&b, "the store %s %s, but the data dir %s was used before (%s); starting would create a new cluster and give old job ids to new jobs",
			e.Path, what, filepath.Dir(e.Path), strings.Join(e.Evidence, ", "))
	}
	fmt.Fprintf(&b, ". Restore %s from a backup, or start once with --reinit (%s=true) to begin a new cluster from the cluster file",
		filepath.Base(e.Path), "GANETI_GATEWAY_REINIT")
	if e.Problem != "missing" {
		fmt.Fprintf(&b, " (the old file is kept as %s.reinit-<time>)", filepath.Base(e.Path))
	}
	return b.String()
}

// Unwrap makes the error an ErrStoreRefused and, for damage, a
// store.ErrCorrupt.
func (e *StoreError) Unwrap() []error { return []error{ErrStoreRefused, e.Err} }

// earlierUse returns what shows that a server used the data dir before.
func earlierUse(cfg Config) []string {
	var found []string
	exists := func(path string) bool {
		_, err := os.Lstat(path)
		return err == nil || !errors.Is(err, fs.ErrNotExist)
	}
	in := func(name string) string { return filepath.Join(cfg.DataDir, name) }
	if p := in(MarkerFile); exists(p) {
		found = append(found, "the marker "+p)
	}
	if rel, err := filepath.Rel(cfg.DataDir, cfg.UsersFile); err == nil && !strings.HasPrefix(rel, "..") && generatedUsersFile(cfg.UsersFile) {
		found = append(found, "the users file "+cfg.UsersFile+" created by a first start")
	}
	for _, name := range []string{selfsigned.CertFile, selfsigned.KeyFile, DomainSecretFile, "crypto"} {
		if p := in(name); exists(p) {
			found = append(found, p)
		}
	}
	return found
}

// generatedUsersFile tells whether path is a users file written by
// auth.CreateInitial (its first line); it opens regular files only.
func generatedUsersFile(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, len(auth.InitialHeader))
	if _, err := io.ReadFull(f, head); err != nil {
		return false
	}
	return string(head) == auth.InitialHeader
}

// openState opens the store, the cluster model and the job engine,
// refusing a store that is missing, empty or blank while the data dir was
// used before, or damaged (at the file level or in a record). With
// Config.Reinit, a refused store is moved aside and a new cluster begins;
// a healthy store is never touched.
func (a *App) openState(ctx context.Context, seed *cluster.File, jc jobs.Config) (*cluster.Model, error) {
	log := a.cfg.Logger
	model, err := a.tryState(seed, jc, false)
	var refused *StoreError
	if err == nil || !errors.As(err, &refused) {
		return model, err
	}
	if !a.cfg.Reinit {
		log.Error("store refused", "path", refused.Path, "problem", refused.Problem, "err", err.Error())
		return nil, err
	}
	moved, merr := moveAside(refused.Path)
	if merr != nil {
		return nil, fmt.Errorf("--reinit: %w", merr)
	}
	log.Warn("--reinit: beginning a new cluster in place of the refused store", "path", refused.Path,
		"problem", refused.Problem, "reason", err.Error(), "old_store_kept_as", moved)
	return a.tryState(seed, jc, true)
}

// tryState is one attempt of openState; fresh accepts a missing, empty or
// blank store whatever the data dir shows.
func (a *App) tryState(seed *cluster.File, jc jobs.Config, fresh bool) (_ *cluster.Model, err error) {
	log := a.cfg.Logger
	path := filepath.Join(a.cfg.DataDir, boltstore.FileName)
	problem := ""
	switch fi, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist):
		problem = "missing"
	case err != nil:
		return nil, fmt.Errorf("store: %w", err)
	case fi.Mode().IsRegular() && fi.Size() == 0:
		problem = "empty"
	}
	evidence := earlierUse(a.cfg)
	if problem != "" && len(evidence) > 0 && !fresh {
		return nil, &StoreError{Path: path, Problem: problem, Evidence: evidence}
	}
	st, err := boltstore.Open(path)
	if errors.Is(err, store.ErrCorrupt) {
		return nil, &StoreError{Path: path, Problem: "damaged", Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer func() {
		if err != nil {
			_ = st.Close()
		}
	}()
	buckets, err := st.Buckets()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if len(buckets) == 0 && problem == "" {
		problem = "blank"
		if len(evidence) > 0 && !fresh {
			return nil, &StoreError{Path: path, Problem: problem, Evidence: evidence}
		}
	}
	info := st.Info()
	if info.Verify.OldMetaDamaged {
		log.Warn("the older of the store's two meta pages is damaged; nothing is lost, the next commit rewrites it", "path", path)
	}
	if info.Upgraded > 0 {
		log.Info("store values given checksums (a store written by an earlier version)", "path", path, "values", info.Upgraded)
	}
	model, err := cluster.Open(st, seed, time.Now)
	if errors.Is(err, store.ErrCorrupt) {
		return nil, &StoreError{Path: path, Problem: "damaged", Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	jc.Model = model
	loadStart := time.Now()
	eng, err := jobs.New(jc)
	if errors.Is(err, store.ErrCorrupt) {
		return nil, &StoreError{Path: path, Problem: "damaged", Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	if problem != "" {
		log.Info("first start: created the store and seeded it from the cluster file", "path", path)
	} else {
		log.Info("store opened", "path", path, "pages", info.Verify.Pages, "buckets", info.Verify.Buckets,
			"records", info.Verify.Keys, "verify_ms", info.Verify.Duration.Milliseconds(),
			"jobs_load_ms", time.Since(loadStart).Milliseconds())
		if a.cfg.ClusterFile != "" {
			// A warning, not a refusal: the flag often stays in a unit
			// file or environment after the first start.
			log.Warn("--cluster-file is ignored: the store already holds a cluster (the file only seeds a new store)",
				"cluster_file", a.cfg.ClusterFile, "store", path)
		}
	}
	a.store, a.bolt, a.jobs = st, st, eng
	if err := writeMarker(a.cfg.DataDir, problem != ""); err != nil {
		return nil, err
	}
	return model, nil
}

// moveAside renames path to path.reinit-<UTC time> (nothing to do when
// it is absent) and returns the new name.
func moveAside(path string) (string, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	base := path + ".reinit-" + time.Now().UTC().Format("20060102T150405Z")
	dst := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, dst); err != nil {
		return "", err
	}
	return dst, syncDir(filepath.Dir(path))
}

// marker is the content of MarkerFile.
type marker struct {
	Store   string    `json:"store"`
	Created time.Time `json:"created"`
	Note    string    `json:"note"`
}

// writeMarker writes MarkerFile when the store was just created or the
// marker is absent (a data dir of an earlier version).
func writeMarker(dir string, created bool) error {
	path := filepath.Join(dir, MarkerFile)
	if !created {
		if _, err := os.Lstat(path); err == nil {
			return nil
		}
	}
	b, err := json.MarshalIndent(marker{
		Store:   boltstore.FileName,
		Created: time.Now().UTC().Truncate(time.Second),
		Note: "Written by ganeti-gateway once its store held a cluster. While this file exists, a missing, " +
			"empty or damaged " + boltstore.FileName + " is refused at start: restore it from a backup, or start with --reinit.",
	}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("store marker: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
