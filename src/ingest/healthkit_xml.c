/*
 * vitalog — ingest/healthkit_xml.c: an Apple Health export.xml, streamed
 * with libxml2's xmlTextReader into HealthKit JSON samples (the form that
 * vl_ingest_healthkit() reads, healthkit.c note 1).
 *
 * DESIGN NOTES
 *
 * 1. The file (Apple's own DTD at the top of every export, e.g.
 *    tests/data/ingest/healthkit/apple-export6s3sample.xml, "HealthKit
 *    Export Version: 3"): a root <HealthData locale=...> holding
 *    <ExportDate>, <Me>, then any number of <Record>, <Correlation>,
 *    <Workout>, <ActivitySummary> (newer exports add <ClinicalRecord>,
 *    <Audiogram>, ...). A Record has the attributes type, unit, value,
 *    sourceName, sourceVersion, device, creationDate, startDate, endDate and
 *    <MetadataEntry key= value=> children (newer exports also put
 *    <HeartRateVariabilityMetadataList> in HRV records: ignored).
 *
 * 2. Streaming, constant memory: xmlReaderForIO over the caller's fd, no
 *    DOM. The reader keeps only the current node; each top-level element is
 *    read whole (a Record and its few children) into one JSON object,
 *    passed to `sample`, released. To keep memory flat even on a hostile
 *    file, a record keeps at most HX_MAX_METADATA metadata entries and a
 *    correlation at most HX_MAX_MEMBERS members; more are dropped.
 *
 * 3. Safety: XML_PARSE_NONET (nothing is ever fetched), no XML_PARSE_NOENT
 *    (external entities are neither loaded nor substituted), no DTDLOAD,
 *    DTDVALID or DTDATTR: the internal DTD is parsed as the grammar
 *    requires, never validated, no default attributes are added. No
 *    XML_PARSE_HUGE: it lifts libxml2's limits on one text node (10 MB), a
 *    name, nesting depth and entity amplification, none of which an export
 *    comes near (its elements are small; the size of the whole file is not
 *    limited without it, the reader streams it); without the flag, an
 *    abusive file fails with a 400 instead.
 *
 * 4. What is passed:
 *    - each top-level <Record> -> {"type", "unit", "value", "startDate",
 *      "endDate", "creationDate", "sourceName", "sourceVersion", "device",
 *      "metadata": {key: value}} with the attributes' text as is (dates in
 *      export form, the device string unparsed: healthkit.c reads both),
 *      "value" a tagged JSON number (vl_json_number) when it is one, else a
 *      string (category values, "HKCategoryValueSleepAnalysisInBed");
 *    - each <Correlation type="HKCorrelationTypeIdentifierBloodPressure">
 *      -> its attributes plus "metadata" and "objects": its member Records,
 *      each as above;
 *    - nothing else: ExportDate, Me, Workout, ActivitySummary, ... and
 *      correlations of other types (Food: their members are also top-level
 *      records, passed there) are skipped.
 * 5. Correlation members are not counted twice. Apple writes every member
 *    of a correlation a second time as a top-level Record (the DTD says so).
 *    Matching those copies to their correlation would need memory growing
 *    with the file (the correlation may come before or after its copies),
 *    so the rule is by type: a top-level HKQuantityTypeIdentifierBloodPressure-
 *    Systolic or -Diastolic Record is never passed; blood pressure comes only
 *    from correlations. HealthKit itself stores blood pressure only as a
 *    correlation, so no reading is lost; a systolic or diastolic value saved
 *    alone by some app (not possible through HealthKit's own UI) would be.
 *
 * 6. Progress: bytes are counted in the read callback; `progress` is called
 *    each time another 4 MiB has been read, and once at the end.
 *
 * 7. Errors: a file that is not well-formed XML (libxml2's first error, with
 *    its line) or whose root is not <HealthData> is a 400 naming the line;
 *    a read error is a 500. `sample` returning -1 stops the read: -1, err
 *    unset. Samples passed before an error stay passed (the file is
 *    streamed: the caller decides what a partial import means).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libxml/xmlreader.h>

#include "ingest_internal.h"

#define HX_PROGRESS_EVERY ((uint64_t)4 << 20)
#define HX_MAX_METADATA 64
#define HX_MAX_MEMBERS 8

#define HX_BP "HKCorrelationTypeIdentifierBloodPressure"
#define HX_SYS "HKQuantityTypeIdentifierBloodPressureSystolic"
#define HX_DIA "HKQuantityTypeIdentifierBloodPressureDiastolic"

#if LIBXML_VERSION >= 21200
typedef const xmlError *hx_error_ptr;
#else
typedef xmlErrorPtr hx_error_ptr;
#endif

/* How a read ended. */
enum { HX_DONE = 0, HX_STOP = -1, HX_XML = -2, HX_NOT_EXPORT = -3, HX_NOMEM = -4 };

typedef struct hx_state {
    xmlTextReaderPtr r;
    int fd;
    uint64_t bytes, next_report;
    vl_ingest_progress_fn progress;
    void *progress_ctx;
    int read_errno;
    int (*sample)(void *ctx, json_t *sample);
    void *ctx;
    char msg[200]; /* libxml2's first error */
    int line;
    char root[64]; /* the root element when it is not HealthData */
} hx_state_t;

static int hx_read(void *arg, char *buf, int len)
{
    hx_state_t *st = arg;
    ssize_t n;
    do
        n = read(st->fd, buf, (size_t)len);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        st->read_errno = errno;
        return -1;
    }
    st->bytes += (uint64_t)n;
    if (st->progress && st->bytes >= st->next_report) {
        st->progress(st->progress_ctx, st->bytes);
        st->next_report = (st->bytes / HX_PROGRESS_EVERY + 1) * HX_PROGRESS_EVERY;
    }
    return (int)n;
}

static void hx_error(void *arg, hx_error_ptr e)
{
    hx_state_t *st = arg;
    size_t n;
    if (!e || e->level < XML_ERR_ERROR || st->msg[0])
        return; /* warnings, and every error after the first */
    snprintf(st->msg, sizeof st->msg, "%s", e->message ? e->message : "not well-formed");
    n = strlen(st->msg);
    while (n && (st->msg[n - 1] == '\n' || st->msg[n - 1] == ' '))
        st->msg[--n] = '\0';
    st->line = e->line;
}

/* Consumes the rest of the current element (nothing if it is empty). */
static int hx_skip(xmlTextReaderPtr r)
{
    int depth = xmlTextReaderDepth(r);
    if (xmlTextReaderIsEmptyElement(r))
        return HX_DONE;
    while (xmlTextReaderRead(r) == 1)
        if (xmlTextReaderNodeType(r) == XML_READER_TYPE_END_ELEMENT &&
            xmlTextReaderDepth(r) == depth)
            return HX_DONE;
    return HX_XML;
}

static int hx_set(json_t *o, const char *key, json_t *v)
{
    return v && json_object_set_new(o, key, v) == 0 ? 0 : HX_NOMEM;
}

/* The attributes of the current Record or Correlation (note 4). */
static json_t *hx_attributes(xmlTextReaderPtr r)
{
    static const char *const keep[] = {"type",         "unit",       "startDate",     "endDate",
                                       "creationDate", "sourceName", "sourceVersion", "device"};
    json_t *o = json_object();
    while (o && xmlTextReaderMoveToNextAttribute(r) == 1) {
        const char *k = (const char *)xmlTextReaderConstName(r);
        const char *v = (const char *)xmlTextReaderConstValue(r);
        if (!k || !v)
            continue;
        if (!strcmp(k, "value")) {
            json_t *num = vl_json_number_valid(v, strlen(v)) ? vl_json_number(v) : NULL;
            json_object_set_new(o, "value", num ? num : json_string(v));
            continue;
        }
        for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
            if (!strcmp(k, keep[i])) {
                json_object_set_new(o, k, json_string(v));
                break;
            }
    }
    xmlTextReaderMoveToElement(r);
    return o;
}

/* A <MetadataEntry key= value=> into o's "metadata". */
static int hx_metadata(xmlTextReaderPtr r, json_t *o)
{
    json_t *meta = json_object_get(o, "metadata");
    xmlChar *key, *value;
    int rc = 0;
    if (!meta) {
        if (hx_set(o, "metadata", json_object()) < 0)
            return HX_NOMEM;
        meta = json_object_get(o, "metadata");
    }
    if (json_object_size(meta) >= HX_MAX_METADATA)
        return 0; /* note 2 */
    key = xmlTextReaderGetAttribute(r, (const xmlChar *)"key");
    value = xmlTextReaderGetAttribute(r, (const xmlChar *)"value");
    if (key && value)
        rc = hx_set(meta, (const char *)key, json_string((const char *)value));
    xmlFree(key);
    xmlFree(value);
    return rc;
}

static int hx_children(hx_state_t *st, json_t *o, int members);

/* A member <Record> of a correlation, into o's "objects". */
static int hx_member(hx_state_t *st, json_t *o)
{
    json_t *objects = json_object_get(o, "objects"), *m;
    int rc;
    if (json_array_size(objects) >= HX_MAX_MEMBERS)
        return hx_skip(st->r); /* note 2 */
    if (!(m = hx_attributes(st->r)))
        return HX_NOMEM;
    if ((rc = hx_children(st, m, 0)) < 0) {
        json_decref(m);
        return rc;
    }
    return json_array_append_new(objects, m) == 0 ? HX_DONE : HX_NOMEM; /* m is stolen */
}

/* Reads the children of the current element into `o`: metadata, and with
 * `members` the member records of a correlation; the rest is skipped. */
static int hx_children(hx_state_t *st, json_t *o, int members)
{
    xmlTextReaderPtr r = st->r;
    int depth = xmlTextReaderDepth(r), rc;
    if (xmlTextReaderIsEmptyElement(r))
        return HX_DONE;
    while (xmlTextReaderRead(r) == 1) {
        int type = xmlTextReaderNodeType(r), d = xmlTextReaderDepth(r);
        const char *name = (const char *)xmlTextReaderConstName(r);
        if (type == XML_READER_TYPE_END_ELEMENT && d == depth)
            return HX_DONE;
        if (type != XML_READER_TYPE_ELEMENT || !name)
            continue;
        if (members && d == depth + 1 && !strcmp(name, "Record")) {
            rc = hx_member(st, o);
        } else {
            rc = d == depth + 1 && !strcmp(name, "MetadataEntry") ? hx_metadata(r, o) : 0;
            if (rc == 0)
                rc = hx_skip(r);
        }
        if (rc < 0)
            return rc;
    }
    return HX_XML;
}

/* Passes one sample object (note 4) and releases it. */
static int hx_pass(hx_state_t *st, json_t *o, int rc)
{
    if (rc == HX_DONE && st->sample(st->ctx, o) < 0)
        rc = HX_STOP;
    json_decref(o);
    return rc;
}

/* One child element of HealthData. */
static int hx_top(hx_state_t *st, const char *name)
{
    xmlTextReaderPtr r = st->r;
    const char *type;
    json_t *o;
    int correlation = !strcmp(name, "Correlation");
    if (!correlation && strcmp(name, "Record"))
        return hx_skip(r); /* ExportDate, Me, Workout, ActivitySummary, ... */
    if (!(o = hx_attributes(r)))
        return HX_NOMEM;
    type = json_string_value(json_object_get(o, "type"));
    if (type &&
        (correlation ? strcmp(type, HX_BP) != 0 : !strcmp(type, HX_SYS) || !strcmp(type, HX_DIA))) {
        json_decref(o); /* not blood pressure; or a member's top-level copy (note 5) */
        return hx_skip(r);
    }
    if (correlation && hx_set(o, "objects", json_array()) < 0) {
        json_decref(o);
        return HX_NOMEM;
    }
    return hx_pass(st, o, hx_children(st, o, correlation));
}

static int hx_document(hx_state_t *st)
{
    int rc, root = 0;
    while ((rc = xmlTextReaderRead(st->r)) == 1) {
        const char *name = (const char *)xmlTextReaderConstName(st->r);
        if (xmlTextReaderNodeType(st->r) != XML_READER_TYPE_ELEMENT || !name)
            continue;
        if (xmlTextReaderDepth(st->r) == 0) {
            if (strcmp(name, "HealthData") != 0) {
                snprintf(st->root, sizeof st->root, "%s", name);
                st->line = (int)xmlGetLineNo(xmlTextReaderCurrentNode(st->r));
                return HX_NOT_EXPORT;
            }
            root = 1;
            continue;
        }
        /* every child of HealthData is consumed whole, so this is one */
        if ((rc = hx_top(st, name)) < 0)
            return rc;
    }
    if (rc < 0)
        return HX_XML;
    return root ? HX_DONE : HX_NOT_EXPORT;
}

static int hx_fail(hx_state_t *st, int rc, vl_error_t *err)
{
    int line = st->line > 0 ? st->line : xmlTextReaderGetParserLineNumber(st->r);
    if (st->read_errno)
        return vl_error_set(err, 500, "exception", NULL, "reading the export: %s",
                            strerror(st->read_errno));
    switch (rc) {
    case HX_STOP: return -1;
    case HX_NOMEM: return vl_error_set(err, 500, "exception", NULL, "export.xml: out of memory");
    case HX_NOT_EXPORT:
        if (st->root[0])
            return vl_error_set(err, 400, "structure", NULL,
                                "export.xml line %d: not an Apple Health export (the root "
                                "element is <%s>, not <HealthData>)",
                                line, st->root);
        return vl_error_set(err, 400, "structure", NULL,
                            "export.xml line %d: not an Apple Health export (no <HealthData>)",
                            line);
    default:
        return vl_error_set(err, 400, "structure", NULL,
                            "export.xml line %d: not well-formed XML: %s", line,
                            st->msg[0] ? st->msg : "the document ends too early");
    }
}

int vl_ingest_healthkit_xml(int fd, int (*sample)(void *ctx, json_t *sample), void *ctx,
                            vl_ingest_progress_fn progress, void *progress_ctx, vl_error_t *err)
{
    hx_state_t st;
    int rc;
    memset(&st, 0, sizeof st);
    st.fd = fd;
    st.next_report = HX_PROGRESS_EVERY;
    st.progress = progress;
    st.progress_ctx = progress_ctx;
    st.sample = sample;
    st.ctx = ctx;
    st.r = xmlReaderForIO(hx_read, NULL, &st, NULL, NULL, XML_PARSE_NONET);
    if (!st.r)
        return vl_error_set(err, 500, "exception", NULL, "export.xml: cannot start a reader");
    xmlTextReaderSetStructuredErrorHandler(st.r, hx_error, &st);
    rc = hx_document(&st);
    if (rc == HX_DONE && st.read_errno)
        rc = HX_XML;
    if (rc == HX_DONE && progress)
        progress(progress_ctx, st.bytes);
    if (rc != HX_DONE)
        rc = hx_fail(&st, rc, err);
    xmlFreeTextReader(st.r);
    return rc;
}
