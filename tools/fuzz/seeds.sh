#!/usr/bin/env bash
# seeds.sh - writes the hand-made seed inputs of tools/fuzz/corpus/.  Run
# once when a seed is added here; the files are committed (reproducers of
# findings are committed as libFuzzer wrote them, not made here).
# Each import seed starts with two option bytes (see fuzz_import.c), each
# response seed with one kind/chunking byte (fuzz_response.c).
set -euo pipefail
C=$(cd "$(dirname "$0")" && pwd)/corpus
mkdir -p "$C"/{import,response,config,urlenc}

imp() { printf "$2" > "$C/import/$1"; }
# b0 bits: 1 reject file, 2 --id-type, 4 pcId, 8 changed-only, 16 urgent,
#          32 --id-column id, 64/128 rows per transaction (1..3)
# b1 bits: 1 source, 128 max_value_chars 1..8, 64 small max_outbox_size
imp basic          '\x01\x01thirdPartyId,tier,points\nc1,gold,10\nc2,,5\nc3,silver\n'
imp rejects        '\x41\x00thirdPartyId,a\nr3,3\nbad/id,4\nbad+id,5\n,6\nr4,1,2\n'
imp dialect        '\x01\x00\xef\xbb\xbfthirdPartyId,tier,note,city\r\nc1,gold,"hello, ""world""",Z\xc3\xbcrich\r\nc2,,"two\r\nlines",\r\n\r\nc3,silver\n'
imp batch_form     '\x01\x00batch=thirdPartyId,profile.a%%2Eb,c\nid%%201,v%%2B1,x\nbad,%%zz,1\nok,%%E2%%82%%AC,+\n'
imp batch_badhdr   '\x01\x00batch=thirdPartyId,a%%2\nx,1\n'
imp id_column      '\x23\x00name,id,x\nfoo,pc1,v\nbar,,w\n'
imp pcid           '\x05\x10pcId,profile.level,city\n1234-5678.28_0,3,Paris\n1234-5678.28_0,4,\n'
imp ecid           '\x01\x00marketingCloudVisitorId,a\nx,1\n'
imp dup_attr       '\x01\x00thirdPartyId,a,profile.a\nx,1,2\n'
imp reserved       '\x01\x00thirdPartyId,mbox,profile..x,.a\nx,1,2,3\n'
imp only_id        '\x01\x00thirdPartyId\nx\n'
imp unclosed       '\x01\x00thirdPartyId,a\nx,1\ny,"open\nz,2\n'
imp stray_quote    '\x01\x00thirdPartyId,a\nx,ab"c\n"y"z,1\n'
imp bad_utf8       '\x01\x00thirdPartyId,a,b\nx,\xc3\x28,1\n\xff\xfe,1,2\nz,\xed\xa0\x80,1\n'
imp utf16          '\x01\x00\xff\xfet\x00h\x00i\x00r\x00d\x00P\x00a\x00r\x00t\x00y\x00I\x00d\x00,\x00a\x00\n\x00x\x00,\x001\x00\n\x00'
imp long_value     '\x01\x82thirdPartyId,a\nx,abc\ny,\xc3\xa9\xc3\xa9\nz,ab\n'
imp full           '\xc1\x40thirdPartyId,a\nx1,1\nx2,2\nx3,3\nx4,4\nx5,5\nx6,6\n'
imp changed        '\x19\x00thirdPartyId,a\nx,1\nx,1\n'
imp changed_state  '\x19\x00thirdPartyId,a\nx,1\nx,1\ny,2\ny,3\n'
imp spaces         '\x01\x00 thirdPartyId , a \n x , v \n'
imp cr_only        '\x01\x00thirdPartyId,a\rx,1\rbad/id,2\ry,3\r'
imp blank_header   '\x01\x00\n\n\nthirdPartyId,a\n\nx,1\n'
imp empty_cells    '\x01\x00thirdPartyId,a,b\nx,,\ny\n'
imp nul            '\x01\x00thirdPartyId,a\x00b\nx,v\x00w\n'
{ printf '\x01\x00thirdPartyId,a\nx'; printf ',%s' $(seq 1 70); printf '\n'; } > "$C/import/many_fields"
imp header_only    '\x01\x00thirdPartyId,a\n'
: > "$C/import/empty"

rsp() { printf "$2" > "$C/response/$1"; }
# byte 0: kind (0 any, 1 submit, 2 status, 3 single) + chunking seed << 2
rsp submit_doc     '\x01<response>\n    <success>true</success>\n    <batchStatus>http://mboxedge45.tt.omtrdc.net/m2/demo/profile/batchStatus?batchId=demo-1701473848678-13029383</batchStatus>\n    <message>Batch submitted for processing</message>\n</response>\n'
rsp submit_v1      '\x05<response><success>true</success><batchStatus>http://mboxedge19.tt.omtrdc.net/m2/fedex/profile/batchStatus?batchId=fedex-1470380971&amp;mboxPC=0000000000000-000000.19_05</batchStatus></response>'
rsp submit_fail    '\x09<response><success>false</success><batchStatus></batchStatus><message>Missing batch= prefix</message></response>'
rsp submit_nourl   '\x0d<response><success>TRUE</success></response>'
rsp status_2020    '\x02<response>\n    <batchId>samplebatch-1585929692655-59449976</batchId>\n    <status>complete</status>\n    <batchSize>164</batchSize>\n    <profile><id>some profile id</id><status>failed</status></profile>\n</response>'
rsp status_2023    '\x06<response><batchId>demo-1845664501</batchId><status>incomplete</status><profile><status>success</status><id>a&amp;1</id></profile>\n<profile>\n <id> b2 </id>\n <status>error</status><extra>x</extra></profile><profile><id>c3</id><status>pending</status></profile><profile><id>d4</id></profile><details><status>stuck</status></details></response>'
rsp status_counts  '\x0a<response><batchId>b-1</batchId><status>complete</status><batchSize>3</batchSize><consumedCount>3</consumedCount><successfulUpdates>1</successfulUpdates><profilesNotFound>0</profilesNotFound><failedUpdates>2</failedUpdates><profile><id>p1</id><status>failed</status></profile><profile><id>p2</id><status>failed</status></profile><message>m</message></response>'
rsp status_stuck   '\x0e<?xml version="1.0" encoding="UTF-8"?><response><status>stuck</status></response>'
rsp status_badcnt  '\x12<response><status>complete</status><batchSize>12x</batchSize></response>'
rsp status_noid    '\x16<response><status>complete</status><profile><status>failed</status></profile></response>'
rsp single_ok      '\x03<response><success>true</success><pcId>x</pcId><message>Request successfully submitted</message></response>'
rsp single_err     '\x07<response><error><code>403</code><message>Unauthorized &lt;token&gt;</message></error></response>'
rsp error_html     '\x00<html><head><title>503 Service Unavailable</title></head><body><h1>Service\tUnavailable</h1>\n<p>try later \xc3\xa9\xc3\xa9</p></body></html>'
rsp error_text     '\x04  upstream connect error or disconnect/reset before headers. reset reason: connection termination  '
rsp doctype        '\x01<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n <!ENTITY lol1 "&lol;&lol;&lol;&lol;">\n]>\n<response><success>false</success><message>&lol1;</message></response>'
rsp deep           "\\x02$(printf '<a>%.0s' $(seq 1 40))x$(printf '</a>%.0s' $(seq 1 40))"
rsp wrong_root     '\x03<answer><success>true</success></answer>'
rsp cdata          '\x01<response><success>true</success><batchStatus><![CDATA[http://h/x?a=1&b=2]]></batchStatus><!-- c --><?pi x?></response>'
rsp truncated      '\x02<response><status>compl'
rsp junk_after     '\x03<response/><response/>'
rsp nested_msg     '\x00<response><a><b><message>inner</message></b></a><error>e</error></response>'
rsp bad_utf8       '\x00<response><message>\xff\xfe bad</message></response>'
rsp utf8_long      "\\x00<response><message>$(printf '\xc3\xa9%.0s' $(seq 1 150))</message></response>"
rsp empty          '\x00'

cfg() { printf "$2" > "$C/config/$1"; }
cfg sample         '; pobox.conf\n[pobox]\ndb = /var/lib/pobox/outbox.db\nclient = demo\nbase_url = http://127.0.0.1:8080\ntoken_file = /etc/pobox/token\nmax_value_chars = 256\nsynchronous = NORMAL\nbusy_timeout = 30s\nbulk_api_thirdpartyid = v2\nbulk_api_pcid = 1\nmax_batch_rows = 500000\nmax_batch_bytes = 49000000\nflush_max_delay = 5m\nverify_tls = yes\nfleet_share = 0.25\nurgent_reserve = .1\nmax_outbox_size = 500M\nmin_free_disk = 100MB\nlog_level = info\nmetrics_interval = 30000ms\n'
cfg durations      'busy_timeout = 250ms\nretention = 7d\nmax_age = 1.5h\nstuck_wait = 0\npoll_cap = 2min\nbackoff_cap = 1e3\n'
cfg sizes          'max_outbox_size = 2G\nmin_free_disk = 1.5k\n'
cfg bad_section    '[other]\nclient = x\n'
cfg bad_line       'client = x\nthis is not a key value line\n'
cfg unknown_key    'clinet = x\n'
cfg range          'max_batch_rows = 500001\n'
cfg bool           'verify_tls = maybe\n'
cfg env            'client = file\n\x00client=env\nbusy_timeout=5s\nfleet_share=0.5\nverify_tls=off\nmax_outbox_size=1M\n'
cfg env_bad        '\x00max_batch_rows=abc\n'
cfg comments       '# comment\n; comment\n[pobox] ; inline\nclient = a ; inline comment\n  base_url=http://x/  \n'
cfg continuation   'client = a\n  continued\n'
cfg long_line      "client = $(printf 'x%.0s' $(seq 1 300))\nbusy_timeout = 1s\n"
cfg crlf           'client = a\r\nbusy_timeout = 2s\r\n'
cfg hex_float      'busy_timeout = 0x10\nfleet_share = 0x1p-2\n'
: > "$C/config/empty"

url() { printf "$2" > "$C/urlenc/$1"; }
url plain          'abcXYZ019-._~'
url reserved       'a b+c&d=e,f%%g/h?i#j\n'
url escapes        '%%41%%2b%%2B%%e2%%82%%ac+%%00'
url bad_escape     'ab%%4'
url bad_hex        '%%zz%%4g'
url utf8           'Z\xc3\xbcrich \xe2\x82\xac \xf0\x9f\x98\x80'
url binary         '\x00\x01\x7f\x80\xff'
: > "$C/urlenc/empty"

# reproducers of findings (each failed before its fix)
cfg nan_share      'fleet_share = nan\n'
cfg nan_size       'max_outbox_size = NaN\n'
cfg nan_duration   'busy_timeout = nan\n'
cfg nan_env        'client = x\n\x00urgent_reserve=-nan\nmin_free_disk=nanM\nretention=nan\n'
printf 'client = %0250d' 0 > "$C/config/long_last_line"
