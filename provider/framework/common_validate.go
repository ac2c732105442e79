package framework

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"

	"github.com/berth-io/berth/control/api"
)

// fieldPrefix maps the start of an api field path to the attribute path
// it lives under in a resource; the longest matching prefix wins.
type fieldPrefix struct {
	field string
	attr  string
}

var (
	podFields = []fieldPrefix{
		{"metadata.generateName", "name_prefix"},
		{"metadata", ""},
		{"spec", ""},
	}
	deploymentFields = []fieldPrefix{
		{"spec.template.metadata", "template"},
		{"spec.template.spec", "template"},
		{"spec.strategy.type", "strategy"},
		{"metadata", ""},
		{"spec", ""},
	}
	serviceFields = []fieldPrefix{
		{"metadata", ""},
		{"spec", ""},
	}
)

var segmentRE = regexp.MustCompile(`^([A-Za-z]+)((?:\[(?:\d+|"(?:[^"\\]|\\.)*")\])*)$`)
var indexRE = regexp.MustCompile(`\[(\d+|"(?:[^"\\]|\\.)*")\]`)

// snake turns an api field name into its attribute name: containerPort →
// container_port, clusterIP → cluster_ip, httpGet → http_get.
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && unicode.IsLower(rs[i-1])
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1]) && i > 0 && unicode.IsUpper(rs[i-1])
			if prevLower || nextLower {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// attributePath maps an api field path (spec.template.spec.containers[0].
// ports[1].containerPort) to the resource's attribute path (template.
// containers[0].ports[1].container_port), and reports false when it cannot.
func attributePath(field string, prefixes []fieldPrefix) (path.Path, bool) {
	var rest, base string
	matched := false
	for _, p := range prefixes {
		if field == p.field || strings.HasPrefix(field, p.field+".") || strings.HasPrefix(field, p.field+"[") {
			rest = strings.TrimPrefix(strings.TrimPrefix(field, p.field), ".")
			base = p.attr
			matched = true
			break
		}
	}
	if !matched {
		return path.Empty(), false
	}
	var segs []string
	if rest != "" {
		segs = strings.Split(rest, ".")
	}
	if base == "" && len(segs) == 0 {
		return path.Empty(), false
	}
	var p path.Path
	started := false
	if base != "" {
		p, started = path.Root(base), true
	}
	for _, seg := range segs {
		m := segmentRE.FindStringSubmatch(seg)
		if m == nil {
			return path.Empty(), false
		}
		name := snake(m[1])
		if !started {
			p, started = path.Root(name), true
		} else {
			p = p.AtName(name)
		}
		for _, idx := range indexRE.FindAllStringSubmatch(m[2], -1) {
			if n, err := strconv.Atoi(idx[1]); err == nil {
				p = p.AtListIndex(n)
			} else if k, err := strconv.Unquote(idx[1]); err == nil {
				p = p.AtMapKey(k)
			}
		}
	}
	return p, true
}

// validateObject defaults and validates obj as the control plane would, and
// reports each problem on the attribute it belongs to. Problems on values
// that are unknown while planning are left for the control plane.
func validateObject(ctx context.Context, obj api.Object, cfg tfsdk.Config, prefixes []fieldPrefix) diag.Diagnostics {
	var diags diag.Diagnostics
	api.Default(obj)
	for _, fe := range api.Validate(obj) {
		p, ok := attributePath(fe.Field, prefixes)
		if !ok {
			diags.AddError("Invalid "+api.KindOf(obj).Kind, fe.Error())
			continue
		}
		if unknownAt(ctx, cfg, p) || dependsOnUnknown(ctx, cfg, fe, prefixes) {
			continue
		}
		diags.AddAttributeError(p, "Invalid "+api.KindOf(obj).Kind+" configuration",
			fmt.Sprintf("%s: %s.\n\nThe control plane would refuse this %s (field %s); change the attribute and plan again.",
				attributeString(p), fe.Detail, api.KindOf(obj).Kind, fe.Field))
	}
	return diags
}

// crossField lists rules whose verdict on one field depends on others: the
// field an error names may be known while the value it is compared with is
// still unknown at plan time (labels built from count.index, ports from
// variables), and then the error would be premature.
var crossField = []struct{ field, dependsOn string }{
	{"spec.selector", "spec.template.metadata.labels"},
	{"spec.template.spec.containers", "spec.template.spec.containers"},
	{"spec.containers", "spec.containers"},
	{"spec.progressDeadlineSeconds", "spec.minReadySeconds"},
	{"spec.strategy", "spec.replicas"},
}

// dependsOnUnknown reports whether a field error compares its field with
// another whose configured value is not known yet.
func dependsOnUnknown(ctx context.Context, cfg tfsdk.Config, fe api.FieldError, prefixes []fieldPrefix) bool {
	for _, cf := range crossField {
		if fe.Field != cf.field && !strings.HasPrefix(fe.Field, cf.field+".") && !strings.HasPrefix(fe.Field, cf.field+"[") {
			continue
		}
		if dp, ok := attributePath(cf.dependsOn, prefixes); ok && unknownAt(ctx, cfg, dp) {
			return true
		}
	}
	return false
}

// unknownAt reports whether the configuration value at p, or any value
// beneath it, is unknown (a value another resource computes).
func unknownAt(ctx context.Context, cfg tfsdk.Config, p path.Path) bool {
	for q := p; len(q.Steps()) > 0; q = q.ParentPath() {
		var v attr.Value
		if diags := cfg.GetAttribute(ctx, q, &v); diags.HasError() {
			continue
		}
		if v == nil {
			continue
		}
		if v.IsUnknown() {
			return true
		}
		if q.Equal(p) && containsUnknown(v) {
			return true
		}
	}
	return false
}

func containsUnknown(v attr.Value) bool {
	if v == nil {
		return false
	}
	if v.IsUnknown() {
		return true
	}
	switch t := v.(type) {
	case interface{ Elements() []attr.Value }:
		for _, e := range t.Elements() {
			if containsUnknown(e) {
				return true
			}
		}
	case interface{ Elements() map[string]attr.Value }:
		for _, e := range t.Elements() {
			if containsUnknown(e) {
				return true
			}
		}
	case interface{ Attributes() map[string]attr.Value }:
		for _, e := range t.Attributes() {
			if containsUnknown(e) {
				return true
			}
		}
	}
	return false
}

// attributeString renders an attribute path the way it is written in a
// configuration: template.containers[0].ports[1].container_port.
func attributeString(p path.Path) string {
	var b strings.Builder
	for _, st := range p.Steps() {
		switch s := st.(type) {
		case path.PathStepAttributeName:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(string(s))
		case path.PathStepElementKeyInt:
			fmt.Fprintf(&b, "[%d]", int64(s))
		case path.PathStepElementKeyString:
			fmt.Fprintf(&b, "[%q]", string(s))
		}
	}
	return b.String()
}
