package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// startEtcdCluster runs three etcd members (Debian's etcd-server) on
// loopback ports and returns their client URLs.
func startEtcdCluster(t *testing.T) []string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		skipOrFailInCI(t, "etcd is not installed (apt-get install etcd-server)")
	}
	var clients, peers, names []string
	for i := range 3 {
		names = append(names, fmt.Sprintf("m%d", i))
		clients = append(clients, "http://"+freePort(t))
		peers = append(peers, "http://"+freePort(t))
	}
	var initial []string
	for i := range 3 {
		initial = append(initial, names[i]+"="+peers[i])
	}
	for i := range 3 {
		cmd := exec.Command(bin, "--name", names[i], "--data-dir", t.TempDir(),
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "e2e", "--log-level", "error")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range clients {
		for {
			resp, err := http.Get(c + "/health")
			if err == nil {
				ok := resp.StatusCode == 200
				resp.Body.Close()
				if ok {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("etcd member %s did not become healthy", c)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return clients
}

type gatewayReplica struct {
	p     *serverProcess
	base  string // with credentials
	admin string
}

func (g *gatewayReplica) leads() bool {
	resp, err := http.Get(g.admin + "/healthz?role=leader")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// TestEtcdFailoverUnderLoad: three gateway processes on a three-member etcd
// cluster of real etcd processes. A burst of concurrent jobs (cluster tag
// additions) goes through all three replicas; the leader is killed (kill
// -9) in the middle. Every acknowledged job exists once on the survivors,
// with a unique id, and ends; every one that succeeded shows its effect
// (its tag), and none of the acknowledged ones is lost.
func TestEtcdFailoverUnderLoad(t *testing.T) {
	endpoints := startEtcdCluster(t)
	var reps []*gatewayReplica
	for i := range 3 {
		port, admin := freePort(t), freePort(t)
		p := startServer(t, "", "--insecure", "--listen", port, "--admin-listen", admin,
			"--store", "etcd", "--etcd-endpoints", strings.Join(endpoints, ","), "--etcd-advertise", port,
			"--etcd-lease-ttl", "2", "--etcd-name", fmt.Sprintf("gw%d", i))
		reps = append(reps, &gatewayReplica{p: p, base: "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr, admin: "http://" + admin})
	}
	var leader *gatewayReplica
	for deadline := time.Now().Add(20 * time.Second); leader == nil; {
		for _, r := range reps {
			if r.leads() {
				leader = r
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no replica leads")
		}
		time.Sleep(50 * time.Millisecond)
	}

	const jobs = 300
	type ack struct {
		id  int64
		tag string
	}
	var (
		mu    sync.Mutex
		acked []ack
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, 32)
	killed := make(chan struct{})
	for i := range jobs {
		if i == jobs/3 {
			go func() {
				defer close(killed)
				_ = leader.p.cmd.Process.Kill() // kill -9
				start := time.Now()
				for time.Since(start) < 30*time.Second {
					for _, r := range reps {
						if r != leader && r.leads() {
							t.Logf("failover: replica %s leads %v after the kill", r.p.Addr, time.Since(start))
							return
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
				t.Error("no replica took over within 30 s")
			}()
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tag := fmt.Sprintf("burst%d", i)
			id, msg := putTag(reps[i%3].base, tag)
			if msg != "" {
				return // not acknowledged (the killed replica, or its forward in flight)
			}
			mu.Lock()
			acked = append(acked, ack{id, tag})
			mu.Unlock()
		}()
	}
	wg.Wait()
	<-killed
	var survivors []*gatewayReplica
	for _, r := range reps {
		if r != leader {
			survivors = append(survivors, r)
		}
	}
	t.Logf("%d of %d jobs acknowledged", len(acked), jobs)
	if len(acked) < jobs/2 {
		t.Errorf("only %d of %d jobs acknowledged", len(acked), jobs)
	}
	seen := map[int64]string{}
	for _, a := range acked {
		if prev, dup := seen[a.id]; dup {
			t.Errorf("job id %d acknowledged twice (%s and %s)", a.id, prev, a.tag)
		}
		seen[a.id] = a.tag
	}
	// Every acknowledged job exists on both survivors and ends.
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range acked {
		for {
			st, ok := jobStatus(t, survivors[int(a.id)%2].base, a.id)
			if !ok {
				t.Fatalf("acknowledged job %d (%s) is lost", a.id, a.tag)
			}
			if st == "success" || st == "error" {
				if st == "error" {
					t.Logf("job %d ended in error", a.id)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %d is still %s", a.id, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The effect of each succeeded job is there once (tags are a set: a
	// job run twice would show as a second job with the same tag).
	req, _ := http.NewRequest("GET", survivors[0].base+"/2/tags", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	err = json.NewDecoder(resp.Body).Decode(&tags)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, tag := range tags {
		have[tag] = true
	}
	for _, a := range acked {
		if st, _ := jobStatus(t, survivors[0].base, a.id); st == "success" && !have[a.tag] {
			t.Errorf("job %d succeeded but tag %s is missing", a.id, a.tag)
		}
	}
	// Jobs carrying each tag: one per acknowledged submission.
	var ids []int64
	req, _ = http.NewRequest("GET", survivors[1].base+"/2/jobs", nil)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	var list []struct {
		ID int64 `json:"id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range list {
		ids = append(ids, j.ID)
	}
	unique := map[int64]bool{}
	for _, id := range ids {
		if unique[id] {
			t.Errorf("job %d listed twice", id)
		}
		unique[id] = true
	}
	for _, a := range acked {
		if !unique[a.id] {
			t.Errorf("acknowledged job %d is not listed", a.id)
		}
	}
}

// jobStatus reads a job's status; false when it is unknown.
func jobStatus(t *testing.T, base string, id int64) (string, bool) {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/2/jobs/%d", base, id), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var j struct {
		ID     *int64 `json:"id"`
		Status string `json:"status"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&j) != nil {
		return "", false
	}
	return j.Status, j.ID != nil
}
