package etcdstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore/etcdtest"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/storetest"
)

// One etcd member for the contract; each store has its own prefix, so
// each starts empty at revision 0.
func TestContract(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	var n atomic.Int64
	open := func(t *testing.T) store.Store {
		return etcdtest.Store(t, cli, fmt.Sprintf("/test/%d/", n.Add(1)))
	}
	t.Run("Plain", func(t *testing.T) { storetest.Run(t, open) })
	t.Run("Rerun", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			s := faultstore.New(open(t))
			s.Rerun(true)
			return s
		})
	})
}
