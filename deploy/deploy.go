// Package deploy ships the example deployment files; the demo cluster file
// is embedded so that the server runs with no file at all.
package deploy

import _ "embed"

// DemoCluster is demo-cluster.json: the cluster a server seeds its store
// with on first start when no cluster file is given.
//
//go:embed demo-cluster.json
var DemoCluster []byte
