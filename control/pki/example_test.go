package pki_test

import (
	"fmt"
	"time"

	"github.com/berth-io/berth/control/pki"
)

// A node joins: the admin API mints a token, the node sends it with a CSR
// for its own identity, and the control plane checks the token and signs.
func Example_nodeJoin() {
	ca, err := pki.NewCA("berth cluster ca", 10*365*24*time.Hour)
	if err != nil {
		panic(err)
	}

	// Control plane, on an admin's request: keep the record, hand out the token.
	token, record := pki.NewJoinToken(15 * time.Minute)

	// The joining node: its key never leaves the host.
	key, err := pki.GenerateKey()
	if err != nil {
		panic(err)
	}
	csrPEM, err := pki.NewCSR(key, pki.NodeIdentity("worker-1"))
	if err != nil {
		panic(err)
	}

	// Control plane, on the join request.
	if err := pki.VerifyJoinToken(token, record, time.Now()); err != nil {
		panic(err)
	}
	record.Used = true // stored with a compare-and-swap before signing
	certPEM, err := ca.SignNodeCSR(csrPEM, "worker-1", 90*24*time.Hour)
	if err != nil {
		panic(err)
	}

	cert, err := pki.ParseCert(certPEM)
	if err != nil {
		panic(err)
	}
	id, err := pki.IdentityFromCert(cert)
	if err != nil {
		panic(err)
	}
	fmt.Println(id.Role, id.Name)
	fmt.Println(pki.VerifyJoinToken(token, record, time.Now()) != nil)
	// Output:
	// node worker-1
	// true
}
