package prober_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/berth-io/berth/acceptance/prober"
)

// A test probes a service while it changes, then asserts on what clients
// saw.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "web v1 pod=a")
	}))
	defer srv.Close()
	ctx := context.Background()

	p, err := prober.Start(ctx, prober.Config{URL: srv.URL + "/", Rate: 100})
	if err != nil {
		panic(err)
	}
	// ... change the service here ...
	if err := p.Wait(ctx, func(r prober.Result) bool { return r.Succeeded >= 10 }); err != nil {
		panic(err)
	}
	res := p.Stop()
	fmt.Println("failed:", res.Failed)
	fmt.Println("every answer from v1:", res.Seen("web v1 ") == res.Succeeded)
	// Output:
	// failed: 0
	// every answer from v1: true
}
