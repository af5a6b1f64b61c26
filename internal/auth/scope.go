package auth

import "strings"

// ClusterScope separates an option from the cluster it is scoped to in a
// users file: "write@a" is the write option on cluster a only (several
// clusters behind one gateway). Ganeti keeps such an option and grants
// nothing with it, as this server does for a cluster of another name.
const ClusterScope = "@"

// scoped splits a cluster-scoped option; ok is false for an unscoped one
// (no "@", or nothing on either side of the last one).
func scoped(opt string) (option, cluster string, ok bool) {
	i := strings.LastIndex(opt, ClusterScope)
	if i <= 0 || i == len(opt)-1 {
		return "", "", false
	}
	return opt[:i], opt[i+1:], true
}

// InCluster returns the user as it is on the named cluster: its unscoped
// options, which apply to every cluster, and the options scoped to this
// cluster, without their scope; options scoped to other clusters grant
// nothing. It returns u itself when u has no scoped option.
func (u *User) InCluster(cluster string) *User {
	has := false
	for _, o := range u.Options {
		if _, _, ok := scoped(o); ok {
			has = true
			break
		}
	}
	if !has {
		return u
	}
	c := *u
	c.Options = make([]string, 0, len(u.Options))
	for _, o := range u.Options {
		opt, cl, ok := scoped(o)
		switch {
		case !ok:
			c.Options = append(c.Options, o)
		case cl == cluster:
			c.Options = append(c.Options, opt)
		}
	}
	return &c
}

// Clusters lists the clusters the user's scoped options name, in order.
func (u *User) Clusters() []string {
	var out []string
	for _, o := range u.Options {
		if _, cl, ok := scoped(o); ok && !contains(out, cl) {
			out = append(out, cl)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
