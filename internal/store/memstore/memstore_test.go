package memstore_test

import (
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/storetest"
)

// Small limits and watch buffer keep the contract's checks of them quick.
func open(*testing.T) *memstore.Store {
	return memstore.New(memstore.WithLimits(store.Limits{MaxOps: 500, MaxBytes: 256 << 10}), memstore.WithWatchBuffer(256))
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

// TestContractRerun runs the contract with every update function run
// twice, the first attempt discarded.
func TestContractRerun(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := faultstore.New(open(t))
		s.Rerun(true)
		return s
	})
}
