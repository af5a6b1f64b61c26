package memstore_test

import (
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/server/store"
	"github.com/ganeti-gateway/ganeti-gateway/server/store/memstore"
	"github.com/ganeti-gateway/ganeti-gateway/server/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return memstore.New() })
}
