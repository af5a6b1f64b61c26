package cluster

import (
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
)

var testClock = func() time.Time { return time.Unix(1700000000, 0) }

// modelFromJSON parses a cluster file and opens a model on a fresh memstore.
func modelFromJSON(t testing.TB, data string) *Model {
	t.Helper()
	f, err := ParseFile([]byte(data))
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	m, err := Open(memstore.New(), f, testClock)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return m
}

func stateFromJSON(t testing.TB, data string) *State {
	t.Helper()
	return modelFromJSON(t, data).State()
}
