package selector

import "testing"

const benchSelector = `role == 'db' && env in {'prod','staging'} && !has(quarantine)`

var benchLabels = map[string]string{
	"role":                        "db",
	"env":                         "staging",
	"app":                         "orders",
	"tier":                        "backend",
	"version":                     "v1.4.2",
	"projectcalico.org/namespace": "shop",
	"kubernetes.io/hostname":      "node-7",
	"team":                        "payments",
	"zone":                        "eu-west-1a",
	"owner":                       "alice",
}

func BenchmarkParse(b *testing.B) {
	const s = `projectcalico.org/namespace == 'shop' && (role in {'db', 'cache', 'queue'} || app starts with 'orders-') && !has(quarantine) && env != 'dev'`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	sel := MustParse(benchSelector)
	if !sel.Evaluate(benchLabels) {
		b.Fatal("selector should match")
	}
	b.ReportAllocs()
	for b.Loop() {
		sel.Evaluate(benchLabels)
	}
}

func BenchmarkEvaluateLabels(b *testing.B) {
	sel := MustParse(benchSelector)
	l := labelMap(benchLabels)
	b.ReportAllocs()
	for b.Loop() {
		sel.EvaluateLabels(l)
	}
}

func BenchmarkEvaluateLargeSet(b *testing.B) {
	sel := MustParse(`zone in {'a','b','c','d','e','f','g','h','i','j','k','l','m','n','o','p','eu-west-1a'}`)
	b.ReportAllocs()
	for b.Loop() {
		sel.Evaluate(benchLabels)
	}
}
