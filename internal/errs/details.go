package errs

// Domain is the ErrorInfo domain of every error the server returns.
const Domain = "ganeti.rapi"

// Metadata keys of the ErrorInfo attached to every mapped error.
const (
	MetaErrorClass = "errorClass"
	MetaErrorCode  = "errorCode"
)
