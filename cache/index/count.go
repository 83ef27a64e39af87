package index

// EntryTypes are the record types CountEntries reports.
var EntryTypes = []string{"blob", "manifest", "tag", "link", "referrer", "upload"}

var entryPrefixes = map[string]string{
	"blob": pBlob, "manifest": pManifest, "tag": pTag, "link": pLink, "referrer": pReferrer, "upload": pUpload,
}

// CountEntries counts the index's records by type (EntryTypes). It walks
// keys without reading values, but still visits every record: metrics
// call it at most every few seconds, never on a request path.
func (tx *badgerTxn) CountEntries() (map[string]int64, error) {
	out := make(map[string]int64, len(EntryTypes))
	for _, typ := range EntryTypes {
		n := int64(0)
		err := tx.scan(entryPrefixes[typ], "", false, func(string, []byte) (bool, error) {
			n++
			return true, nil
		})
		if err != nil {
			return nil, fail(err, "count %s records", typ)
		}
		out[typ] = n
	}
	return out, nil
}
