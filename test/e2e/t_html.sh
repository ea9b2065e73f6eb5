# The HTML report in a real browser: Debian's headless Chromium loads the
# page with test/e2e/html/layout.js appended, which checks the layout from
# the DOM (nothing overlaps, no column squeezed, every denial shown above
# any folded run, rows link to their process) and writes what it found into
# the page for --dump-dom. A screenshot of each is kept under build/.

chromium_bin() { command -v chromium || command -v chromium-browser; }

# layout PAGE [EXTRA_HEAD]: the checker's findings (JSON) for the page.
layout() {
	local page=$T/checked.html
	{ sed "s|</head>|${2:-}</head>|" "$1"
	  printf '<script>%s</script>\n' "$(cat "$AG_ROOT/test/e2e/html/layout.js")"; } > "$page"
	timeout 60 "$(chromium_bin)" --headless --no-sandbox --disable-gpu --no-first-run \
		--user-data-dir="$T/chromium" --window-size=1280,1000 --virtual-time-budget=10000 \
		--dump-dom "file://$page" 2>/dev/null |
		sed -n 's|.*<pre id="layout-result">\([^<]*\)</pre>.*|\1|p' | sed 's/&quot;/"/g'
}

shoot() {
	mkdir -p "$AG_BUILD"
	timeout 60 "$(chromium_bin)" --headless --no-sandbox --disable-gpu --no-first-run \
		--user-data-dir="$T/chromium" --window-size=1280,1600 --hide-scrollbars \
		--screenshot="$2" "file://$1" >/dev/null 2>&1
	[ -s "$2" ] || fail "no screenshot at $2"
}

# A messy session: runs of deletes (one rm -rf of N files), ten denials
# of credential deletes after them, a failed rmdir.
messy() {
	mkdir -p "$WS/src" "$HOME/.ssh"
	(cd "$WS/src" && seq 1 "$1" | sed 's/$/.c/' | xargs touch)
	for i in $(seq 1 10); do echo k > "$HOME/.ssh/k$i"; done
	agrun bash -c 'rm -rf src; for i in $(seq 1 10); do rm -f ~/.ssh/k$i; done;
		mkdir -p d/e; touch d/e/f; rmdir d/e; true' >/dev/null 2>&1
}

check_page() {
	local res; res=$(layout "$1")
	[ -n "$res" ] || fail "chromium gave no layout result for $1" || return 1
	echo "layout: $res"
	assert_eq "$(jq -r '.errors | join("; ")' <<<"$res")" ""
	assert_eq "$(jq -r .denials <<<"$res")" 10
	assert_eq "$(jq -r '"\(.filtered.shown) \(.filtered.other)"' <<<"$res")" "10 0"
	[ "$(jq -r .loadms <<<"$res")" -le 1000 ] || fail "the page took $(jq -r .loadms <<<"$res") ms to load"
}

test_html_report_layout_of_a_messy_session() {
	command -v jq >/dev/null && chromium_bin >/dev/null || fail "chromium is not installed (tools/install-deps.sh)"
	messy 90
	"$AG" report --html "$T/r.html" 2>/dev/null
	check_page "$T/r.html"
	# Self-contained: nothing is fetched.
	assert_not_contains "$(grep -o 'src=[^ >]*\|href="http[^"]*' "$T/r.html")" "http"
	# Verdict with its undo command, runs folded as in the text report.
	assert_contains "$(cat "$T/r.html")" "agentguard restore --session $(latest_session)"
	assert_contains "$("$AG" report)" "... and 88 more like these by rm"
	assert_contains "$(cat "$T/r.html")" "and 88 more like these by rm"
	assert_contains "$(cat "$T/r.html")" "failed: ENOTEMPTY"
	shoot "$T/r.html" "$AG_BUILD/report-100.png"
	# The checker can fail: the old rule that pinned the events table
	# over the header is caught.
	local bad; bad=$(layout "$T/r.html" '<style>table.evt{position:absolute;top:3px;width:4px}</style>')
	[ "$(jq '.errors | length' <<<"$bad")" -gt 0 ] || fail "the checker missed a broken layout: $bad"
}

test_html_report_of_100000_events_is_small_and_opens_fast() {
	command -v jq >/dev/null && chromium_bin >/dev/null || fail "chromium is not installed (tools/install-deps.sh)"
	messy 100000
	[ "$(db "select count(*) from events")" -ge 100000 ] || fail "the session has too few events"
	"$AG" report --html "$T/r.html" 2>/dev/null
	local size; size=$(stat -c %s "$T/r.html")
	echo "100,000 events: $size bytes"
	[ "$size" -le 1048576 ] || fail "the page is $size bytes"
	check_page "$T/r.html"
	shoot "$T/r.html" "$AG_BUILD/report-100000.png"
}
