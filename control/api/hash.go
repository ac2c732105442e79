package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// TemplateHash returns a short, stable hash of a pod template: it names a
// deployment's revision and labels its pods (berth.io/template-hash), so the
// same template always maps to the same revision. Hash a defaulted template:
// JSON field order is fixed by the Go types and map keys are sorted by
// encoding/json, so equal templates give equal hashes.
func TemplateHash(t *PodTemplate) string {
	b, err := json.Marshal(t)
	if err != nil {
		// Every field of PodTemplate marshals; this cannot happen.
		panic("api: marshal pod template: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10]
}
