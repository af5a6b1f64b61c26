package backendtest_test

import (
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/backend/backendtest"
)

// TestFakeContract keeps the fake honest: it passes the contract suite,
// but for what needs a job that does not end by itself.
func TestFakeContract(t *testing.T) {
	backendtest.Run(t, func(*testing.T) backendtest.Harness {
		return backendtest.Harness{Backend: backendtest.NewFake(), Lacks: backendtest.FakeLacks}
	})
}
