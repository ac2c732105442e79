package framework

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/berth-io/berth/control/api"
)

// QuantityType is the string type of resource quantities ("500m", "1Gi").
// Its values compare by amount, not by spelling, so "0.5" in a
// configuration and "500m" read back from the control plane never show as a
// difference.
type QuantityType struct {
	basetypes.StringType
}

var (
	_ basetypes.StringTypable                    = QuantityType{}
	_ basetypes.StringValuableWithSemanticEquals = QuantityValue{}
)

// String names the type in diagnostics.
func (t QuantityType) String() string { return "QuantityType" }

// Equal reports whether o is also a QuantityType.
func (t QuantityType) Equal(o attr.Type) bool {
	_, ok := o.(QuantityType)
	return ok
}

// ValueFromString wraps a string value as a quantity.
func (t QuantityType) ValueFromString(_ context.Context, in basetypes.StringValue) (basetypes.StringValuable, diag.Diagnostics) {
	return QuantityValue{StringValue: in}, nil
}

// ValueFromTerraform decodes a quantity from the plugin protocol.
func (t QuantityType) ValueFromTerraform(ctx context.Context, in tftypes.Value) (attr.Value, error) {
	v, err := t.StringType.ValueFromTerraform(ctx, in)
	if err != nil {
		return nil, err
	}
	s, ok := v.(basetypes.StringValue)
	if !ok {
		return nil, fmt.Errorf("unexpected value type %T", v)
	}
	return QuantityValue{StringValue: s}, nil
}

// ValueType returns the value type of quantities.
func (t QuantityType) ValueType(context.Context) attr.Value { return QuantityValue{} }

// QuantityValue is a quantity as a user wrote it.
type QuantityValue struct {
	basetypes.StringValue
}

// NewQuantityValue returns a known quantity.
func NewQuantityValue(s string) QuantityValue {
	return QuantityValue{StringValue: basetypes.NewStringValue(s)}
}

// Type returns QuantityType.
func (v QuantityValue) Type(context.Context) attr.Type { return QuantityType{} }

// Equal compares spelling, as Terraform requires of Equal; amounts are
// compared by StringSemanticEquals.
func (v QuantityValue) Equal(o attr.Value) bool {
	other, ok := o.(QuantityValue)
	return ok && v.StringValue.Equal(other.StringValue)
}

// StringSemanticEquals reports whether two quantities are the same amount,
// so the spelling the user chose is kept in state.
func (v QuantityValue) StringSemanticEquals(_ context.Context, nv basetypes.StringValuable) (bool, diag.Diagnostics) {
	var diags diag.Diagnostics
	other, ok := nv.(QuantityValue)
	if !ok {
		diags.AddError("Semantic equality check error", fmt.Sprintf("expected a QuantityValue, got %T", nv))
		return false, diags
	}
	return QuantitiesEqual(v.ValueString(), other.ValueString()), diags
}

// QuantitiesEqual reports whether a and b are the same amount: exactly, or
// after the control plane's own rounding (api.Quantity.Canonical) for CPU
// and for memory alike, since an element of a requests map does not know
// which resource it belongs to. Spellings that do not parse are equal only
// when identical.
func QuantitiesEqual(a, b string) bool {
	if a == b {
		return true
	}
	ra, err1 := api.ParseQuantity(a)
	rb, err2 := api.ParseQuantity(b)
	if err1 != nil || err2 != nil {
		return false
	}
	if ra.Cmp(rb) == 0 {
		return true
	}
	for _, res := range []api.ResourceName{api.ResourceCPU, api.ResourceMemory} {
		ca, err1 := api.Quantity(a).Canonical(res)
		cb, err2 := api.Quantity(b).Canonical(res)
		if err1 != nil || err2 != nil || ca != cb {
			return false
		}
	}
	return true
}
