package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Reason is a machine-readable word saying why a request failed; clients
// branch on it (a Conflict means re-read and retry).
type Reason string

// The reasons the API returns.
const (
	ReasonBadRequest      Reason = "BadRequest"
	ReasonInvalid         Reason = "Invalid"
	ReasonNotFound        Reason = "NotFound"
	ReasonAlreadyExists   Reason = "AlreadyExists"
	ReasonConflict        Reason = "Conflict"
	ReasonUnauthorized    Reason = "Unauthorized"
	ReasonForbidden       Reason = "Forbidden"
	ReasonGone            Reason = "Gone"
	ReasonTooLarge        Reason = "RequestEntityTooLarge"
	ReasonTooManyRequests Reason = "TooManyRequests"
	ReasonUnavailable     Reason = "ServiceUnavailable"
	ReasonInternal        Reason = "InternalError"
	ReasonTimeout         Reason = "Timeout"
)

var reasonCodes = map[Reason]int{
	ReasonBadRequest:      http.StatusBadRequest,
	ReasonInvalid:         http.StatusUnprocessableEntity,
	ReasonNotFound:        http.StatusNotFound,
	ReasonAlreadyExists:   http.StatusConflict,
	ReasonConflict:        http.StatusConflict,
	ReasonUnauthorized:    http.StatusUnauthorized,
	ReasonForbidden:       http.StatusForbidden,
	ReasonGone:            http.StatusGone,
	ReasonTooLarge:        http.StatusRequestEntityTooLarge,
	ReasonTooManyRequests: http.StatusTooManyRequests,
	ReasonUnavailable:     http.StatusServiceUnavailable,
	ReasonInternal:        http.StatusInternalServerError,
	ReasonTimeout:         http.StatusGatewayTimeout,
}

// Status is the JSON body of every failed request, and the error type the
// client returns for one: a reason for programs and a message for people.
type Status struct {
	// Code is the HTTP status code.
	Code int `json:"code"`
	// Reason is the machine-readable cause.
	Reason Reason `json:"reason"`
	// Message says what went wrong and what to do about it.
	Message string `json:"message"`
	// Causes lists each invalid field for Invalid errors.
	Causes []FieldError `json:"causes,omitempty"`
}

// Error returns the message.
func (s *Status) Error() string { return s.Message }

// NewError makes a Status error with the HTTP code that belongs to reason.
func NewError(reason Reason, format string, args ...any) *Status {
	code, ok := reasonCodes[reason]
	if !ok {
		code = http.StatusInternalServerError
	}
	return &Status{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// NewNotFound says that kind/name does not exist.
func NewNotFound(kind, key string) *Status {
	return NewError(ReasonNotFound, "%s %q not found", kind, key)
}

// NewAlreadyExists says that kind/name exists already.
func NewAlreadyExists(kind, key string) *Status {
	return NewError(ReasonAlreadyExists, "%s %q already exists", kind, key)
}

// NewConflict says the update carried a stale resourceVersion.
func NewConflict(kind, key string, have, want int64) *Status {
	return NewError(ReasonConflict,
		"%s %q was modified (resourceVersion %d, update carried %d): read it again and retry", kind, key, want, have)
}

// NewInvalid turns field errors into one Invalid error.
func NewInvalid(kind, key string, errs FieldErrors) *Status {
	s := NewError(ReasonInvalid, "%s %q is invalid: %s", kind, key, errs.Error())
	s.Causes = errs
	return s
}

// ReasonOf returns the reason of a Status error (wrapped or not), or "".
func ReasonOf(err error) Reason {
	var s *Status
	if errors.As(err, &s) {
		return s.Reason
	}
	return ""
}

// IsNotFound reports whether err says the object does not exist.
func IsNotFound(err error) bool { return ReasonOf(err) == ReasonNotFound }

// IsAlreadyExists reports whether err says the object exists already.
func IsAlreadyExists(err error) bool { return ReasonOf(err) == ReasonAlreadyExists }

// IsConflict reports whether err is an optimistic-concurrency conflict.
func IsConflict(err error) bool { return ReasonOf(err) == ReasonConflict }

// IsInvalid reports whether err is a validation failure.
func IsInvalid(err error) bool { return ReasonOf(err) == ReasonInvalid }

// IsForbidden reports whether the caller may not do this.
func IsForbidden(err error) bool { return ReasonOf(err) == ReasonForbidden }

// IsGone reports whether a watch or list asked for a compacted revision
// and must relist.
func IsGone(err error) bool { return ReasonOf(err) == ReasonGone }
