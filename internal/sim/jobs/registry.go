package jobs

// Implements reports whether the engine has an executor for the opcode
// OP_ID, so that a caller can refuse a job before submitting it.
func (e *Engine) Implements(opID string) bool { return e.cfg.Executors[opID] != nil }
