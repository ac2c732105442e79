package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/berth-io/berth/control/api"
)

// reasonMethodNotAllowed answers a known path asked with a method it does
// not serve.
const reasonMethodNotAllowed api.Reason = "MethodNotAllowed"

// toStatus turns any error into the Status the API answers with: a Status
// (wrapped or not) as it is, a deadline as Timeout, a body over the limit as
// RequestEntityTooLarge, anything else as InternalError.
func toStatus(err error) *api.Status {
	var st *api.Status
	if errors.As(err, &st) {
		return st
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return api.NewError(api.ReasonTooLarge, "request body is larger than the limit of %d bytes", tooLarge.Limit)
	case errors.Is(err, context.DeadlineExceeded):
		return api.NewError(api.ReasonTimeout, "the request timed out: %v", err)
	case errors.Is(err, context.Canceled):
		return api.NewError(api.ReasonUnavailable, "the request was cancelled: %v", err)
	}
	return api.NewError(api.ReasonInternal, "internal error: %v", err)
}

// writeJSON answers v with code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may have gone; nothing to do about it
}

// writeError answers the Status for err.
func writeError(w http.ResponseWriter, err error) {
	st := toStatus(err)
	writeJSON(w, st.Code, st)
}

// decodeBody reads a JSON body of at most limit bytes into v, refusing
// unknown fields so typos surface instead of being dropped silently.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	data, err := io.ReadAll(body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return toStatus(err)
		}
		return api.NewError(api.ReasonBadRequest, "read request body: %v", err)
	}
	if len(data) == 0 {
		return api.NewError(api.ReasonBadRequest, "request body is empty: send a JSON document")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.NewError(api.ReasonBadRequest, "decode request body: %v", err)
	}
	if dec.More() {
		return api.NewError(api.ReasonBadRequest, "decode request body: more than one JSON document")
	}
	return nil
}

// forbidden is the refusal for an identity doing what it may not.
func forbidden(who, format string, args ...any) *api.Status {
	return api.NewError(api.ReasonForbidden, "%s may not %s", who, fmt.Sprintf(format, args...))
}
