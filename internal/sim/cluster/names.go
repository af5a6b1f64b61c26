package cluster

import (
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/names"
)

// The naming rules of cluster objects (internal/names) as domain errors.
// Every executor that creates or renames an object, and the cluster file,
// go through these functions.

// Ganeti's tag limits (constants.MAX_TAG_LEN, MAX_TAGS_PER_OBJ).
const (
	MaxTagLen     = names.MaxTagLen
	MaxTagsPerObj = names.MaxTagsPerObj
)

// ClassTag is Ganeti's TagError class.
const ClassTag = "TagError"

// NormalizeHostname is Ganeti's Hostname.GetNormalizedName (see
// names.NormalizeHostname): an invalid name is OpPrereqError("Invalid
// hostname '<lowered name>'", wrong_input).
func NormalizeHostname(name string) (string, error) {
	n, lowered, ok := names.NormalizeHostname(name)
	if !ok {
		return "", errs.Prereq(errs.CodeInval, "Invalid hostname '%s'", lowered)
	}
	return n, nil
}

// ValidObjectName is names.ValidObjectName: the rule of node group and
// network names.
func ValidObjectName(name string) bool { return names.ValidObjectName(name) }

// CheckObjectName is ValidObjectName as an OpPrereqError (wrong_input)
// naming the kind of object ("node group", "network").
func CheckObjectName(kind, name string) error {
	if names.ValidObjectName(name) {
		return nil
	}
	return errs.Prereq(errs.CodeInval, "Invalid %s name '%s'", kind, name)
}

func tagError(msg string) error { return &errs.Error{Class: ClassTag, Msg: msg} }

// ValidateTag is Ganeti's TaggableObject.ValidateTag (names.TagProblem)
// as a TagError.
func ValidateTag(tag string) error {
	if msg := names.TagProblem(tag); msg != "" {
		return tagError(msg)
	}
	return nil
}

// AddTags is Ganeti's TaggableObject.AddTag for each of add, in order, on
// the tag set tags: every tag is validated, and adding one to a set that
// already holds MaxTagsPerObj tags fails with TagError("Too many tags")
// (whether or not the set holds it already). It returns the new set,
// sorted, without duplicates; tags is not modified.
func AddTags(tags, add []string) ([]string, error) {
	set := make(map[string]bool, len(tags)+len(add))
	for _, t := range tags {
		set[t] = true
	}
	for _, t := range add {
		if err := ValidateTag(t); err != nil {
			return nil, err
		}
		if len(set) >= MaxTagsPerObj {
			return nil, tagError("Too many tags")
		}
		set[t] = true
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sortStrings(out)
	return out, nil
}
