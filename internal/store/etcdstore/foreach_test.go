package etcdstore_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore/etcdtest"
)

// TestForEachPages: ForEach reads a bucket a few keys at a time and merges
// the transaction's own puts, overwrites and deletes into each page, at
// page borders too: what it visits, in order, is the bucket as the
// transaction sees it, for random buckets and writes.
func TestForEachPages(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	for seed := range uint64(60) {
		r := rand.New(rand.NewPCG(seed, 1))
		s := etcdtest.Store(t, cli, fmt.Sprintf("/pages/%d/", seed))
		etcdstore.SetForEachPage(s, 1+r.IntN(4))
		key := func() string { return fmt.Sprintf("k%02d", r.IntN(40)) }
		want := map[string]string{}
		if err := s.Update(t.Context(), func(tx store.Tx) error {
			clear(want)
			for range r.IntN(30) {
				k := key()
				want[k] = "stored"
				if err := tx.Put("b", k, []byte("stored")); err != nil {
					return err
				}
			}
			return tx.Put("other", "k00", []byte("another bucket"))
		}); err != nil {
			t.Fatal(err)
		}
		stored := maps.Clone(want)
		if err := s.Update(t.Context(), func(tx store.Tx) error {
			want = maps.Clone(stored) // fn may run again
			for i := range r.IntN(20) {
				k := key()
				if r.IntN(3) == 0 {
					delete(want, k)
					if err := tx.Delete("b", k); err != nil {
						return err
					}
					continue
				}
				v := fmt.Sprintf("written %d", i)
				want[k] = v
				if err := tx.Put("b", k, []byte(v)); err != nil {
					return err
				}
			}
			var got []string
			if err := tx.ForEach("b", func(k string, v []byte) error {
				got = append(got, k+"="+string(v))
				return nil
			}); err != nil {
				return err
			}
			var exp []string
			for _, k := range slices.Sorted(maps.Keys(want)) {
				exp = append(exp, k+"="+want[k])
			}
			if !slices.Equal(got, exp) {
				t.Errorf("seed %d: ForEach visited\n%v\nwant\n%v", seed, got, exp)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}
