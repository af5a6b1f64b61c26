package backend

// FilterRule is a job filter rule (GET /2/filters).
type FilterRule struct {
	UUID        string `json:"uuid"`
	Watermark   int64  `json:"watermark"`
	Priority    int64  `json:"priority"`
	Predicates  []any  `json:"predicates"`
	Action      any    `json:"action"`
	ReasonTrail []any  `json:"reason_trail"`
}

// Filter rule actions.
const (
	FilterAccept    = "ACCEPT"
	FilterContinue  = "CONTINUE"
	FilterPause     = "PAUSE"
	FilterReject    = "REJECT"
	FilterRateLimit = "RATE_LIMIT"
)

// RateLimit returns n for a ["RATE_LIMIT", n] action.
func (f *FilterRule) RateLimit() (int64, bool) {
	l, ok := f.Action.([]any)
	if !ok || len(l) != 2 || l[0] != FilterRateLimit {
		return 0, false
	}
	n, ok := l[1].(int64)
	return n, ok
}

// ActionName is the action's name (RATE_LIMIT for ["RATE_LIMIT", n]).
func (f *FilterRule) ActionName() string {
	if s, ok := f.Action.(string); ok {
		return s
	}
	if _, ok := f.RateLimit(); ok {
		return FilterRateLimit
	}
	return ""
}
