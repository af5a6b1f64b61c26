package auth

import "context"

type userKey struct{}

// NewContext returns ctx carrying the authenticated user.
func NewContext(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// FromContext returns the authenticated user of a request; false for an
// anonymous one.
func FromContext(ctx context.Context) (*User, bool) {
	u, ok := ctx.Value(userKey{}).(*User)
	return u, ok && u != nil
}
