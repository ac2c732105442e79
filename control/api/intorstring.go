package api

import (
	"encoding/json"
	"strconv"
)

// IntOrString holds a port given either as a number or as the name of a
// container port.
type IntOrString struct {
	// IntVal is the number, when IsString is false.
	IntVal int32
	// StrVal is the name, when IsString is true.
	StrVal string
	// IsString says which of the two is set.
	IsString bool
}

// FromInt makes an IntOrString holding a number.
func FromInt(i int32) IntOrString { return IntOrString{IntVal: i} }

// FromString makes an IntOrString holding a name.
func FromString(s string) IntOrString { return IntOrString{StrVal: s, IsString: true} }

// String renders the value as a user wrote it.
func (v IntOrString) String() string {
	if v.IsString {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// IsZero reports whether nothing is set.
func (v IntOrString) IsZero() bool { return !v.IsString && v.IntVal == 0 }

// MarshalJSON writes a number or a string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.StrVal)
	}
	return json.Marshal(v.IntVal)
}

// UnmarshalJSON reads a number or a string; a string of digits becomes a
// number, so "8080" and 8080 mean the same port.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if n, err := strconv.ParseInt(s, 10, 32); err == nil {
			*v = FromInt(int32(n))
			return nil
		}
		*v = FromString(s)
		return nil
	}
	var n int32
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*v = FromInt(n)
	return nil
}
