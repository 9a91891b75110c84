package cloudstacksim

import (
	"strconv"
	"strings"
)

// maxPageSize is default.page.size.
const maxPageSize = 500

// request is one verified API call.
type request struct {
	cmd    string            // command name in lower case, as error texts show it
	params map[string]string // by lower-cased parameter name
}

func newRequest(cmd string, v values) *request {
	r := &request{cmd: strings.ToLower(cmd), params: map[string]string{}}
	for k, val := range v {
		lk := strings.ToLower(k)
		if _, dup := r.params[lk]; dup && k != lk {
			continue
		}
		r.params[lk] = val
	}
	return r
}

func (r *request) get(name string) (string, bool) {
	v, ok := r.params[name]
	return v, ok
}

// flag reads a Boolean parameter as Boolean.valueOf does: only "true"
// (any case) is true.
func (r *request) flag(name string) bool {
	v, _ := r.get(name)
	return strings.EqualFold(v, "true")
}

// paging is a list command's page and pagesize; size 0 lists everything.
type paging struct{ page, size int }

// paging validates page and pagesize as BaseListCmd does.
func (r *request) paging() (paging, *apiError) {
	var p paging
	ps, havePS := r.get("pagesize")
	pg, havePage := r.get("page")
	if havePS {
		n, err := strconv.Atoi(ps)
		if err != nil {
			return p, invalidValue(r.cmd, "pagesize", ps)
		}
		switch {
		case n == -1:
			if havePage {
				return p, paramError("Can't specify page parameter when pagesize is -1 (Unlimited)")
			}
			return p, nil
		case n > maxPageSize:
			return p, paramError("Page size can't exceed max allowed page size value: " + strconv.Itoa(maxPageSize))
		case n < 1:
			return p, invalidValue(r.cmd, "pagesize", ps)
		}
		p.size = n
	}
	if havePage {
		n, err := strconv.Atoi(pg)
		if err != nil || n < 1 {
			return p, invalidValue(r.cmd, "page", pg)
		}
		p.page = n
	}
	switch {
	case havePS && !havePage:
		return p, paramError(`"page" parameter is required when "pagesize" is specified`)
	case havePage && !havePS:
		return p, paramError(`"pagesize" parameter is required when "page" is specified`)
	}
	return p, nil
}

// page cuts one page out of items; count stays the total.
func page[T any](p paging, name string, items []T) list {
	total := len(items)
	if p.size > 0 {
		start := (p.page - 1) * p.size
		switch {
		case start >= total:
			items = nil
		case start+p.size < total:
			items = items[start : start+p.size]
		default:
			items = items[start:]
		}
	}
	if len(items) == 0 {
		return list{name: name, count: total}
	}
	return list{name: name, count: total, items: items}
}

// like is a case-insensitive SQL LIKE '%pattern%'; an empty pattern
// matches everything.
func like(s, pattern string) bool {
	return pattern == "" || strings.Contains(strings.ToLower(s), strings.ToLower(pattern))
}

// equal is a case-insensitive SQL equality; an empty want matches
// everything.
func equal(s, want string) bool {
	return want == "" || strings.EqualFold(s, want)
}
