package jobs

// clusterObjectExecutors are the executors of the cluster, node, node
// group and network opcodes.
func clusterObjectExecutors() map[string]Executor {
	return map[string]Executor{}
}
