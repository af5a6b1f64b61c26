package jobs

// instanceExecutors are the executors of the instance opcodes.
func instanceExecutors() map[string]Executor {
	return map[string]Executor{}
}
