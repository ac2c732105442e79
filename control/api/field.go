package api

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one field, named by its path in the
// object, for example spec.template.containers[0].ports[1].containerPort.
type FieldError struct {
	// Field is the path to the field.
	Field string `json:"field"`
	// Detail says what is wrong and what is allowed.
	Detail string `json:"detail"`
}

// Error returns "field: detail".
func (e FieldError) Error() string { return e.Field + ": " + e.Detail }

// FieldErrors collects every problem of an object, so a user fixes them all
// at once instead of one per attempt.
type FieldErrors []FieldError

// Error joins the problems with "; ".
func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Add appends a problem with a formatted detail.
func (es *FieldErrors) Add(path, format string, args ...any) {
	*es = append(*es, FieldError{Field: path, Detail: fmt.Sprintf(format, args...)})
}

// Err returns nil when there are no problems, so callers can write
// `return errs.Err()`.
func (es FieldErrors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Path builds field paths: Path("spec").Child("containers").Index(0).
type Path string

// Child appends a field name.
func (p Path) Child(name string) Path {
	if p == "" {
		return Path(name)
	}
	return Path(string(p) + "." + name)
}

// Index appends a list index.
func (p Path) Index(i int) Path { return Path(fmt.Sprintf("%s[%d]", p, i)) }

// Key appends a map key.
func (p Path) Key(k string) Path { return Path(fmt.Sprintf("%s[%q]", p, k)) }

// String returns the path.
func (p Path) String() string { return string(p) }
