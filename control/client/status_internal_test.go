package client

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/berth-io/berth/control/api"
)

func TestDecodeStatusFallsBackToTheHTTPCode(t *testing.T) {
	tests := []struct {
		name       string
		code       int
		body       string
		wantReason api.Reason
	}{
		{"json status is taken as it is", 409, `{"code":409,"reason":"AlreadyExists","message":"pod \"a\" already exists"}`, api.ReasonAlreadyExists},
		{"plain text 404 becomes NotFound", 404, "404 page not found", api.ReasonNotFound},
		{"empty 429 becomes TooManyRequests", 429, "", api.ReasonTooManyRequests},
		{"gateway error becomes InternalError", 502, "<html>bad gateway</html>", api.ReasonInternal},
		{"410 becomes Gone", 410, "", api.ReasonGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.WriteHeader(tt.code)
			_, _ = rec.WriteString(tt.body)
			resp := rec.Result()
			resp.Request, _ = http.NewRequest(http.MethodGet, "https://x/v1/pods", nil)
			err := decodeStatus(resp)
			st, ok := err.(*api.Status)
			if !ok {
				t.Fatalf("got %T, want *api.Status", err)
			}
			if st.Reason != tt.wantReason || st.Code != tt.code || st.Message == "" {
				t.Fatalf("got %+v, want reason %s code %d and a message", st, tt.wantReason, tt.code)
			}
		})
	}
}
