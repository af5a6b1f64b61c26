package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend/forward"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
)

// The stores of Config.Store.
const (
	StoreBolt = "bolt"
	StoreEtcd = "etcd"
)

// LeaderHealthService is the gRPC health service name that is SERVING
// only on the replica that leads (Store "etcd"); the overall health ("")
// is SERVING on every replica that serves reads.
const LeaderHealthService = "ganeti.gateway.v1.Leader"

// EtcdConfig is the etcd of Config.Store "etcd".
type EtcdConfig struct {
	etcdstore.DialConfig
	// Prefix of the keys (default etcdstore.DefaultPrefix); replicas of
	// one cluster share it.
	Prefix string
	// LeaseTTL is the replicas' lease in seconds (default
	// etcdstore.DefaultLeaseTTL): a leader cut off from etcd loses the
	// leadership after it, and another replica takes over; any replica
	// cut off from etcd stops serving after it.
	LeaseTTL int
	// Name names this replica in the election (default: the host name).
	Name string
	// Advertise is the address (host:port) other replicas reach this
	// one's listener at, to forward writes while it leads (default: the
	// listen address, with the host name when it binds every interface).
	Advertise string
	// ReplicaCA verifies the leader's certificate when a follower
	// forwards a write over TLS (PEM; default: this replica's own
	// certificate, which fits replicas sharing --tls-cert).
	ReplicaCA string
	// CompactionInterval is how often the leader compacts etcd's history
	// (etcdstore.Compactor: to the revision of the previous interval,
	// the Kubernetes apiserver's way). 0: never (etcd compacts itself
	// with its --auto-compaction-retention); --etcd-compaction-interval
	// defaults to DefaultEtcdCompactionInterval.
	CompactionInterval time.Duration
}

// checkStore validates Store and Etcd.
func (c *Config) checkStore() error {
	switch c.Store {
	case "":
		c.Store = StoreBolt
	case StoreBolt:
	case StoreEtcd:
		if len(c.Etcd.Endpoints) == 0 {
			return errors.New("--store etcd needs --etcd-endpoints")
		}
	default:
		return fmt.Errorf("--store %q: want bolt or etcd", c.Store)
	}
	if c.Store != StoreEtcd && len(c.Etcd.Endpoints) > 0 {
		return errors.New("--etcd-endpoints needs --store etcd")
	}
	if c.Store != StoreEtcd && (c.Etcd.Advertise != "" || c.Etcd.ReplicaCA != "") {
		return errors.New("--etcd-advertise and --replica-ca need --store etcd")
	}
	if c.Store == StoreEtcd && len(c.Upstream.URLs) > 0 {
		return errors.New("--store etcd keeps the simulated cluster: it does not go with --upstream, whose cluster keeps its own state")
	}
	if c.Etcd.CompactionInterval < 0 {
		return errors.New("--etcd-compaction-interval must not be negative (0: never)")
	}
	if c.Etcd.Advertise != "" {
		if err := checkListen(c.Etcd.Advertise); err != nil {
			return fmt.Errorf("--etcd-advertise: %w", err)
		}
	}
	return nil
}

// advertise is the address of this replica for the others.
func (c *Config) advertise() (string, error) {
	if c.Etcd.Advertise != "" {
		return c.Etcd.Advertise, nil
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", err
	}
	if port == "0" {
		return "", errors.New("a listener on port 0 needs --etcd-advertise (the others cannot guess its port)")
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, err = os.Hostname(); err != nil {
			return "", err
		}
	}
	return net.JoinHostPort(host, port), nil
}

// leaderValue is the value of a replica's key in the election.
type leaderValue struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	// Draining: the leader is shutting down; its listener may be closed
	// while its job queue stops (watchLeader leaves it alone).
	Draining bool `json:"draining,omitempty"`
}

// replica is this process among the replicas sharing one etcd prefix.
// Every replica serves: a follower keeps a copy of the store (mirror)
// from one etcd watch and answers the reads from it; the writes go to the
// leader through the forwarding backend (internal/backend/forward), which
// answers once the commit is visible in the copy. Every replica campaigns:
// the one that wins stops its copy, loads the cluster and the job queue
// from etcd (recovering it as after a crash) and runs it, with every
// commit fenced; once it loses the leadership (its lease expired) it
// stops: the process exits and its restart follows again. A replica whose
// lease cannot be renewed (cut off from etcd) stops serving and exits.
type replica struct {
	a  *App
	id leaderValue // this replica's key in the election
	st *etcdstore.Store
	el *etcdstore.Elector
	// lease is the replica's etcd lease: once it may have expired, the
	// replica stops serving.
	lease *etcdstore.Lease
	fwd   *forward.Backend
	rpc   *forward.Client
	seed  *cluster.File
	jc    jobs.Config

	secret []byte
	revs   revReader
	won    chan struct{} // closed when the campaign is won
	ready  chan struct{} // closed once a role is set
	runCtx context.Context
	cancel context.CancelFunc
	// suspended: the lease may have expired (watchLease); reads are
	// refused and health is NOT_SERVING.
	suspended atomic.Bool

	mu        sync.Mutex
	mirror    *mirror              // the follower's copy (nil when leading)
	engine    *jobs.Engine         // the leader's job queue (nil when following)
	compactor *etcdstore.Compactor // the leader's (nil when following or off)
	leading   bool
	changed   chan struct{} // closed and replaced at each role change
	stopped   bool
}

// openReplica opens the store on etcd and the role of this replica; it
// returns once this replica serves reads (follower or leader).
func (a *App) openReplica(ctx context.Context, seed *cluster.File, jc jobs.Config) (_ backend.Backend, err error) {
	log := a.cfg.Logger
	ec := a.cfg.Etcd
	cli, err := etcdstore.Dial(ec.DialConfig)
	if err != nil {
		return nil, err
	}
	st, err := etcdstore.New(etcdstore.Config{Client: cli, Prefix: ec.Prefix})
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	a.store = st
	a.closeEtcd = func() { _ = st.Close(); _ = cli.Close() }
	name := ec.Name
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return nil, err
		}
	}
	addr, err := a.cfg.advertise()
	if err != nil {
		return nil, fmt.Errorf("--etcd-advertise: %w", err)
	}
	id, _ := json.Marshal(leaderValue{Name: name, Addr: addr})
	r := &replica{a: a, id: leaderValue{Name: name, Addr: addr}, st: st, el: etcdstore.NewElector(st, string(id), ec.LeaseTTL), seed: seed, jc: jc,
		won: make(chan struct{}), ready: make(chan struct{}), changed: make(chan struct{})}
	// A leader whose commit etcd refused, or did not confirm even after
	// its resolution (etcdstore: its outcome is unknown), stops its job queue
	// (fail-stop). It must give up the leadership too, or no replica runs
	// the queue until someone restarts it: it stops serving and exits, and
	// another replica takes over, loading from etcd what was committed.
	onFailure := jc.OnFailure
	r.jc.OnFailure = func(err error) {
		if onFailure != nil {
			onFailure(err)
		}
		r.fail(fmt.Errorf("etcd: %w; this replica gives up the leadership and stops serving, restart it", err))
	}
	if r.secret, err = st.SharedSecret(ctx); err != nil {
		return nil, err
	}
	dial, err := a.replicaDialer()
	if err != nil {
		return nil, err
	}
	r.revs.st = st
	r.rpc = &forward.Client{Leader: r.leaderAddr, Dial: dial, Secret: r.secret, Logger: log}
	r.fwd = forward.New(forward.Config{Remote: r.rpc, Sync: r.sync, LeaderSync: r.leaderSync, Logger: log})
	a.replica = r
	a.lost = make(chan error, 1)
	a.healthSrv.SetServingStatus(LeaderHealthService, healthpb.HealthCheckResponse_NOT_SERVING)
	sess, err := r.el.Session(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcd: session: %w", err)
	}
	r.lease = sess
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.runCtx, r.cancel = runCtx, cancel
	log.Info("etcd: this replica serves and campaigns for the leadership", "endpoints", ec.Endpoints, "prefix", st.Prefix(),
		"name", name, "advertise", addr)
	go r.campaign(runCtx)
	go r.watchLeader(runCtx)
	go func() {
		select {
		case <-sess.Done():
			r.fail(errors.New("etcd: this replica's lease could not be renewed (cut off from etcd); it stops serving, restart it"))
		case <-runCtx.Done():
		}
	}()
	if err := r.follow(ctx); err != nil {
		return nil, err
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return r.fwd, nil
}

// follow builds the follower's copy and serves from it, unless the
// campaign is won first.
func (r *replica) follow(ctx context.Context) error {
	start := time.Now()
	m, err := startMirror(ctx, r.st, r.jc, r.won, r.fail)
	if errors.Is(err, errLeading) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("etcd: following the store: %w", err)
	}
	r.mu.Lock()
	if r.leading || r.stopped {
		r.mu.Unlock()
		m.stop()
		return nil
	}
	r.mirror = m
	r.fwd.Set(sim.New(m.model, m.engine), false)
	r.roleChanged()
	r.mu.Unlock()
	r.a.cfg.Logger.Info("etcd: following the leader; reads are served from this replica's copy",
		"revision", m.rev(), "loaded_in", time.Since(start).String())
	return nil
}

// roleChanged signals a role change (mu held).
func (r *replica) roleChanged() {
	close(r.changed)
	r.changed = make(chan struct{})
	select {
	case <-r.ready:
	default:
		close(r.ready)
	}
}

// campaign waits for the leadership, then leads until it is lost.
func (r *replica) campaign(ctx context.Context) {
	log := r.a.cfg.Logger
	start := time.Now()
	lead, err := r.el.Campaign(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.fail(fmt.Errorf("etcd: campaign: %w", err))
		}
		return
	}
	close(r.won)
	log.Info("etcd: this replica leads; loading the cluster and the job queue", "waited", time.Since(start).String())
	model, err := cluster.Open(r.st, r.seed, time.Now)
	if err != nil {
		r.fail(fmt.Errorf("cluster: %w", err))
		return
	}
	jc := r.jc
	jc.Model = model
	eng, err := jobs.New(jc)
	if err != nil {
		r.fail(fmt.Errorf("job queue: %w", err))
		return
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		_ = eng.Stop(cancelled())
		return
	}
	old := r.mirror
	r.mirror, r.engine, r.leading = nil, eng, true
	eng.Start()
	if iv := r.a.cfg.Etcd.CompactionInterval; iv > 0 {
		// It ends with the leadership.
		r.compactor = r.st.StartCompactor(lead, iv, log)
	}
	r.fwd.Set(sim.New(model, eng), true)
	r.roleChanged()
	if !r.a.draining.Load() && !r.suspended.Load() {
		r.a.healthSrv.SetServingStatus(LeaderHealthService, healthpb.HealthCheckResponse_SERVING)
	}
	r.mu.Unlock()
	if old != nil {
		old.stop()
	}
	log.Info("etcd: this replica runs the job queue", "took", time.Since(start).String())
	select {
	case <-lead.Done():
	case <-ctx.Done():
		return
	}
	r.fail(errors.New("etcd: this replica lost the leadership (its lease expired or its key is gone); the job queue stops, restart to follow again"))
}

// fail stops serving: health NOT_SERVING, Lost delivers err (the
// process exits; a restart follows or campaigns again).
func (r *replica) fail(err error) {
	if r.a.draining.Load() {
		return
	}
	r.mu.Lock()
	stopped := r.stopped
	r.mu.Unlock()
	if stopped {
		return
	}
	r.a.cfg.Logger.Error(err.Error())
	r.a.healthSrv.Shutdown()
	select {
	case r.a.lost <- err:
	default:
	}
}

// leaseCheckEvery is how often a replica checks its own lease
// (watchLease).
const leaseCheckEvery = 50 * time.Millisecond

// watchLease stops this replica serving once etcd has not confirmed its
// lease for half the TTL (Lease.ValidUntil is half a TTL away): well
// before etcd could let the lease expire, a new leader win, or a write be
// missed here. Reads are refused and the health is NOT_SERVING until a
// renewal gets through (a short cut, or etcd electing its own leader,
// which extends the leases): then it serves again. The etcd client ends
// the session once the lease has not been renewed for its TTL, and the
// replica gives up (Lost) up to a second later. It starts once the App is
// complete (it sets the health of every service).
func (r *replica) watchLease(ctx context.Context) {
	log := r.a.cfg.Logger
	t := time.NewTicker(leaseCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		valid := time.Now().Add(r.lease.TTL / 2).Before(r.lease.ValidUntil())
		if valid != r.suspended.Load() {
			continue
		}
		if valid {
			log.Info("etcd: etcd renewed this replica's lease; it serves again")
		} else {
			log.Warn("etcd: etcd has not confirmed this replica's lease for half its TTL; it stops serving until it does",
				"ttl", r.lease.TTL.String())
		}
		r.mu.Lock()
		r.suspended.Store(!valid)
		r.setHealth(valid, r.leading)
		r.mu.Unlock()
	}
}

// setHealth sets the health of every service (r.mu held): serving, and
// the Leader service when leading too.
func (r *replica) setHealth(serving, leading bool) {
	a := r.a
	if a.draining.Load() {
		return
	}
	st := func(ok bool) healthpb.HealthCheckResponse_ServingStatus {
		if ok {
			return healthpb.HealthCheckResponse_SERVING
		}
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	a.healthSrv.SetServingStatus("", st(serving))
	for name := range a.grpcServer.GetServiceInfo() {
		a.healthSrv.SetServingStatus(name, st(serving))
	}
	a.healthSrv.SetServingStatus(LeaderHealthService, st(serving && leading))
}

// errSuspended refuses a read on a replica whose lease may have expired.
var errSuspended = errs.Unavailable("This replica is cut off from etcd; another replica serves")

// sync returns once every commit etcd holds now is visible here.
func (r *replica) sync(ctx context.Context) error {
	if r.suspended.Load() {
		return errSuspended
	}
	rev, err := r.revs.rev(ctx)
	if err != nil {
		return err
	}
	for {
		r.mu.Lock()
		m, leading, ch := r.mirror, r.leading, r.changed
		r.mu.Unlock()
		if leading {
			return nil // the leader loaded the store after the commit
		}
		if m != nil {
			err := m.waitRev(ctx, rev)
			if !errors.Is(err, errMirrorStopped) {
				return err
			}
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Checks of the leader by a follower (watchLeader).
const (
	leaderCheckEvery = 250 * time.Millisecond
	leaderCheckTime  = time.Second
	// leaderGoneAfter is how many checks in a row must find the leader
	// gone before it is deposed.
	leaderGoneAfter = 2
)

// watchLeader lets a follower depose a leader whose process is gone (kill
// -9, a crash, a restart) at once, rather than after the leader's lease:
// the process at the leader's address refuses connections, or answers
// with another lease (a new process that follows), in leaderGoneAfter
// checks in a row. A leader that does not answer in time (a partition, a
// host down) keeps its leadership until its lease expires.
func (r *replica) watchLeader(ctx context.Context) {
	log := r.a.cfg.Logger
	t := time.NewTicker(leaderCheckEvery)
	defer t.Stop()
	var suspect int64
	strikes := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.fwd.IsLeader() {
			return
		}
		lease, why := r.leaderGone(ctx)
		if lease == 0 {
			strikes = 0
			continue
		}
		if lease != suspect {
			suspect, strikes = lease, 0
		}
		if strikes++; strikes < leaderGoneAfter {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, leaderCheckTime)
		err := r.el.Depose(cctx, lease)
		cancel()
		if err != nil {
			log.Warn("etcd: deposing a leader that is gone failed; its lease will expire", "why", why, "err", err)
			continue
		}
		log.Warn("etcd: the leader is gone; its lease is revoked so that a replica takes over now", "why", why)
		strikes = 0
	}
}

// leaderGone checks the leader once: its lease when it is gone (and
// why), else 0.
func (r *replica) leaderGone(ctx context.Context) (int64, string) {
	ctx, cancel := context.WithTimeout(ctx, leaderCheckTime)
	defer cancel()
	v, lease, err := r.el.LeaderLease(ctx)
	if err != nil || lease == int64(r.lease.Lease()) {
		return 0, ""
	}
	var lv leaderValue
	if json.Unmarshal([]byte(v), &lv) != nil || lv.Addr == "" || lv.Draining {
		return 0, ""
	}
	if forward.Gone(ctx, lv.Addr) {
		return lease, "its address " + lv.Addr + " refuses connections"
	}
	got, err := r.rpc.Identity(ctx, lv.Addr)
	if err != nil || got == lease {
		return 0, ""
	}
	return lease, fmt.Sprintf("the replica at its address %s holds another lease", lv.Addr)
}

// leaderSync waits for the leader's commits under way (jobs.Engine.Barrier).
func (r *replica) leaderSync(ctx context.Context) error {
	if r.suspended.Load() {
		return errSuspended
	}
	r.mu.Lock()
	eng := r.engine
	r.mu.Unlock()
	if eng == nil {
		return nil
	}
	return eng.Barrier(ctx)
}

// leaderAddr is the advertised address of the current leader.
func (r *replica) leaderAddr(ctx context.Context) (string, error) {
	v, err := r.el.Leader(ctx)
	if err != nil {
		return "", err
	}
	var lv leaderValue
	if err := json.Unmarshal([]byte(v), &lv); err != nil || lv.Addr == "" {
		return "", fmt.Errorf("etcd: the leader's key holds %q, not a replica's address", v)
	}
	return lv.Addr, nil
}

// health is the replica's part of /healthz: leader tells whether it must
// lead.
func (r *replica) health(ctx context.Context, leader bool) error {
	if r.suspended.Load() {
		return errors.New("cut off from etcd")
	}
	r.mu.Lock()
	m, eng, leading := r.mirror, r.engine, r.leading
	r.mu.Unlock()
	switch {
	case leader && !leading:
		return errors.New("not the leader")
	case eng != nil:
		if err := eng.Err(); err != nil {
			return err
		}
	case m != nil:
		if err := m.Err(); err != nil {
			return err
		}
	default:
		return errors.New("starting")
	}
	return r.st.View(ctx, func(store.Tx) error { return nil })
}

// electionCallTime bounds the calls of drain and resign: etcd may be
// gone, and the shutdown goes on without them.
const electionCallTime = 2 * time.Second

// drain tells the followers that the leader is shutting down (a no-op on
// a follower), so that they wait for it to resign.
func (r *replica) drain(ctx context.Context) {
	v := r.id
	v.Draining = true
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(ctx, electionCallTime)
	defer cancel()
	if err := r.el.Proclaim(ctx, string(b)); err != nil {
		r.a.cfg.Logger.Warn("etcd: telling the followers that the leader drains failed", "err", err)
	}
}

// resign gives up the leadership (or the campaign) once the job queue
// stopped: another replica takes over at once, not after the lease.
func (r *replica) resign(ctx context.Context) {
	// Also after the shutdown's time ran out: a short try, which spares
	// the others the lease.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), electionCallTime)
	defer cancel()
	if err := r.el.Resign(ctx); err != nil {
		r.a.cfg.Logger.Warn("etcd: resigning failed; the lease will expire", "err", err)
	}
}

// stop stops the job queue (gracefully within ctx) or the copy.
func (r *replica) stop(ctx context.Context) error {
	r.mu.Lock()
	r.stopped = true
	m, eng, comp := r.mirror, r.engine, r.compactor
	r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	if comp != nil {
		comp.Stop()
	}
	var err error
	if eng != nil {
		err = eng.Stop(ctx)
	}
	if m != nil {
		m.stop()
	}
	r.rpc.Close()
	return err
}

// revReader reads the store's revision for the reads of a follower,
// sharing one etcd read among the callers that wait at the same time: a
// caller joins the next read, which begins after it arrived (so the
// revision it gets is at least the one when it called), never one in
// flight.
type revReader struct {
	st      store.Store
	mu      sync.Mutex
	next    *revRead
	running bool
}

type revRead struct {
	done chan struct{}
	rev  int64
	err  error
}

func (f *revReader) rev(ctx context.Context) (int64, error) {
	f.mu.Lock()
	my := f.next
	if my == nil {
		my = &revRead{done: make(chan struct{})}
		f.next = my
		if !f.running {
			f.launch()
		}
	}
	f.mu.Unlock()
	select {
	case <-my.done:
		return my.rev, my.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// launch starts the next read (mu held).
func (f *revReader) launch() {
	rd := f.next
	f.next, f.running = nil, true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rd.rev, rd.err = store.Rev(ctx, f.st)
		cancel()
		close(rd.done)
		f.mu.Lock()
		f.running = false
		if f.next != nil {
			f.launch()
		}
		f.mu.Unlock()
	}()
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// handler is the Replica service of this replica.
func (r *replica) handler() *forward.Handler {
	return &forward.Handler{Leader: r.fwd.Leader, Secret: func() []byte { return r.secret },
		Lease: func() int64 { return int64(r.lease.Lease()) }}
}

// replicaDialer connects to another replica's listener: h2c with
// Insecure, else TLS verified with ReplicaCA or this replica's own
// certificate.
func (a *App) replicaDialer() (func(string) (*grpc.ClientConn, error), error) {
	var creds credentials.TransportCredentials
	if a.cfg.Insecure {
		creds = insecure.NewCredentials()
	} else {
		pool := x509.NewCertPool()
		if a.cfg.Etcd.ReplicaCA != "" {
			pem, err := os.ReadFile(a.cfg.Etcd.ReplicaCA)
			if err != nil {
				return nil, fmt.Errorf("--replica-ca: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--replica-ca: no PEM certificate in %s", a.cfg.Etcd.ReplicaCA)
			}
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
		if a.cfg.Etcd.ReplicaCA == "" {
			// The pool is filled with this replica's certificate once
			// it is loaded (New loads it after the backend).
			tc = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, //nolint:gosec // verified below against the own certificate
				VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { return a.verifyReplicaPeer(raw) }}
		}
		creds = credentials.NewTLS(tc)
	}
	return func(addr string) (*grpc.ClientConn, error) {
		return grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	}, nil
}

// verifyReplicaPeer accepts a leader presenting this replica's own
// certificate (replicas sharing --tls-cert).
func (a *App) verifyReplicaPeer(raw [][]byte) error {
	if a.tls == nil || len(a.tls.Certificates) == 0 || len(raw) == 0 {
		return errors.New("replica: no certificate to verify the leader with (give --replica-ca)")
	}
	own := a.tls.Certificates[0].Certificate
	if len(own) > 0 && string(own[0]) == string(raw[0]) {
		return nil
	}
	return errors.New("replica: the leader's certificate is not this replica's (give --replica-ca)")
}

// skipReplicaAuth runs next for every method but the Replica service's,
// which authenticates replicas with their shared secret instead of users.
func skipReplicaAuth(next grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, forward.MethodPrefix) {
			return handler(ctx, req)
		}
		return next(ctx, req, info, handler)
	}
}

// Lost delivers an error when this replica stops serving (Store "etcd":
// it lost the leadership, its lease, or its copy of the store): the
// caller closes the App and exits. Nil (never ready) with bbolt.
func (a *App) Lost() <-chan error { return a.lost }

// Defaults of the etcd store's flags.
const (
	DefaultEtcdPrefix             = etcdstore.DefaultPrefix
	DefaultEtcdLeaseTTL           = etcdstore.DefaultLeaseTTL
	DefaultEtcdCompactionInterval = etcdstore.DefaultCompactionInterval
)
