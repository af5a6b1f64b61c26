package auth

import (
	"slices"
	"testing"
)

func TestInCluster(t *testing.T) {
	tab, _, err := ParseUsers([]byte("alice pw read,write@a, admin@b\nbob pw write\ncarol pw read,write@,@a,x@y@a\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, cluster string
		want          []string
	}{
		{"alice", "a", []string{"read", "write"}},
		{"alice", "b", []string{"read", "admin"}},
		{"alice", "c", []string{"read"}},
		{"alice", "", []string{"read"}},
		{"bob", "a", []string{"write"}},
		{"bob", "zz", []string{"write"}},
		// "write@" and "@a" are not scoped (nothing on one side): kept as
		// they are, granting nothing; "x@y@a" is "x@y" on a.
		{"carol", "a", []string{"read", "write@", "@a", "x@y"}},
		{"carol", "y", []string{"read", "write@", "@a"}},
	} {
		u, _ := tab.Lookup(tc.user)
		got := u.InCluster(tc.cluster)
		if !slices.Equal(got.Options, tc.want) {
			t.Errorf("%s on %q: options %q, want %q", tc.user, tc.cluster, got.Options, tc.want)
		}
		if _, ok := tab.Authenticate(tc.user, "pw"); !ok {
			t.Errorf("%s: password not accepted", tc.user)
		}
		if got.HasOption("write") != slices.Contains(tc.want, "write") {
			t.Errorf("%s on %q: HasOption(write) wrong", tc.user, tc.cluster)
		}
	}
	bob, _ := tab.Lookup("bob")
	if bob.InCluster("a") != bob {
		t.Error("a user without scoped options is returned as is")
	}
	alice, _ := tab.Lookup("alice")
	if got := alice.Clusters(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Clusters() = %q", got)
	}
	if !slices.Equal(alice.Options, []string{"read", "write@a", "admin@b"}) {
		t.Errorf("InCluster changed the table's user: %q", alice.Options)
	}
	// The scoped copy still authenticates nothing by itself, but keeps the
	// user's name.
	if alice.InCluster("a").Name != "alice" {
		t.Error("name lost")
	}
}
