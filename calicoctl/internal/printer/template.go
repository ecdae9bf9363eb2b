package printer

import (
	"fmt"
	"io"
	"text/template"
)

// Template prints the results through a user's Go template. As in Calico
// the template's data is the slice of results: `get KIND` gives one
// *List ({{range .}}{{range .Items}}...), a get by names gives the
// resources.
type Template struct {
	tmpl *template.Template
}

// NewTemplate parses src with the join, joinAndTruncate, jsonpath, add and
// config functions available.
func NewTemplate(src string, opts Options) (*Template, error) {
	t, err := template.New("get").Funcs(funcs(opts)).Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parsing template: %w", err)
	}
	return &Template{tmpl: t}, nil
}

// Print implements Printer.
func (t *Template) Print(w io.Writer, objs []any) error {
	if err := t.tmpl.Execute(w, objs); err != nil {
		return fmt.Errorf("executing template: %w", err)
	}
	return nil
}
