package api

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

// Quantity is an amount of a resource written the way users know from
// Kubernetes: CPU in cores or millicores ("0.5", "500m"), memory in bytes
// with binary or decimal suffixes ("128Mi", "1G"). Defaulting rewrites every
// quantity into its canonical form (the largest suffix that keeps the value
// exact: "0.5" → "500m", "1024Mi" → "1Gi"), so equal amounts are stored
// equal and comparing specs never shows a false difference.
type Quantity string

var suffixes = []struct {
	s string
	m *big.Rat
}{
	{"Ki", big.NewRat(1<<10, 1)}, {"Mi", big.NewRat(1<<20, 1)}, {"Gi", big.NewRat(1<<30, 1)},
	{"Ti", big.NewRat(1<<40, 1)}, {"Pi", big.NewRat(1<<50, 1)}, {"Ei", big.NewRat(1<<60, 1)},
	{"m", big.NewRat(1, 1000)}, {"k", big.NewRat(1000, 1)}, {"M", big.NewRat(1e6, 1)},
	{"G", big.NewRat(1e9, 1)}, {"T", big.NewRat(1e12, 1)}, {"P", big.NewRat(1e15, 1)},
	{"E", big.NewRat(1e18, 1)},
}

// ParseQuantity parses a quantity into an exact rational number.
func ParseQuantity(s string) (*big.Rat, error) {
	str := strings.TrimSpace(s)
	if str == "" {
		return nil, fmt.Errorf("empty quantity")
	}
	mult := big.NewRat(1, 1)
	for _, suf := range suffixes {
		if strings.HasSuffix(str, suf.s) {
			num := strings.TrimSuffix(str, suf.s)
			// "m" must not swallow the "M"-less forms like "1Mi"; the
			// binary suffixes come first in the table for that reason.
			str = num
			mult = suf.m
			break
		}
	}
	if str == "" || strings.ContainsAny(str, "eE/ ") || strings.HasPrefix(str, "+") {
		return nil, fmt.Errorf("%q is not a quantity: use a number with an optional suffix (m, k, M, G, Ki, Mi, Gi, ...)", s)
	}
	r, ok := new(big.Rat).SetString(str)
	if !ok {
		return nil, fmt.Errorf("%q is not a quantity: use a number with an optional suffix (m, k, M, G, Ki, Mi, Gi, ...)", s)
	}
	if r.Sign() < 0 {
		return nil, fmt.Errorf("%q is negative", s)
	}
	return r.Mul(r, mult), nil
}

// MilliValue returns the quantity in thousandths, rounded up (CPU in
// millicores). It fails when the quantity is not valid.
func (q Quantity) MilliValue() (int64, error) {
	r, err := ParseQuantity(string(q))
	if err != nil {
		return 0, err
	}
	return ratCeil(new(big.Rat).Mul(r, big.NewRat(1000, 1)))
}

// Value returns the quantity as a whole number, rounded up (memory in
// bytes). It fails when the quantity is not valid.
func (q Quantity) Value() (int64, error) {
	r, err := ParseQuantity(string(q))
	if err != nil {
		return 0, err
	}
	return ratCeil(r)
}

func ratCeil(r *big.Rat) (int64, error) {
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if new(big.Rat).SetInt(n).Cmp(r) < 0 {
		n.Add(n, big.NewInt(1))
	}
	if !n.IsInt64() || n.Int64() > math.MaxInt64/1000 {
		return 0, fmt.Errorf("quantity too large")
	}
	return n.Int64(), nil
}

// Canonical returns the canonical spelling of a valid quantity for the named
// resource: CPU in whole cores or millicores, everything else in whole units
// with the largest exact binary suffix (or decimal suffix when the user
// wrote a decimal one and it stays exact).
func (q Quantity) Canonical(res ResourceName) (Quantity, error) {
	r, err := ParseQuantity(string(q))
	if err != nil {
		return "", err
	}
	if res == ResourceCPU {
		milli, err := ratCeil(new(big.Rat).Mul(r, big.NewRat(1000, 1)))
		if err != nil {
			return "", err
		}
		if milli%1000 == 0 {
			return Quantity(fmt.Sprintf("%d", milli/1000)), nil
		}
		return Quantity(fmt.Sprintf("%dm", milli)), nil
	}
	v, err := ratCeil(r)
	if err != nil {
		return "", err
	}
	if v == 0 {
		return "0", nil
	}
	decimal := !strings.Contains(string(q), "i") && strings.IndexAny(string(q), "kMGTPE") >= 0
	if decimal {
		for _, s := range []struct {
			s string
			m int64
		}{{"E", 1e18}, {"P", 1e15}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"k", 1e3}} {
			if v%s.m == 0 {
				return Quantity(fmt.Sprintf("%d%s", v/s.m, s.s)), nil
			}
		}
	}
	for _, s := range []struct {
		s string
		m int64
	}{{"Ei", 1 << 60}, {"Pi", 1 << 50}, {"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if v%s.m == 0 {
			return Quantity(fmt.Sprintf("%d%s", v/s.m, s.s)), nil
		}
	}
	return Quantity(fmt.Sprintf("%d", v)), nil
}
