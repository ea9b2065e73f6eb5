// Appended to a report page by test/e2e/t_html.sh: checks the layout from
// the DOM once the page has loaded and writes the findings into the page
// (<pre id=layout-result>), which chromium --dump-dom hands back.
addEventListener('load', function () {
	var out = { errors: [], loadms: Math.round(performance.now()) };
	function all(sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); }
	function box(e) { return e.getBoundingClientRect(); }
	function name(e) {
		return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
			(e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '');
	}
	function overlap(a, b) {
		var p = box(a), q = box(b);
		return p.left < q.right - 0.5 && q.left < p.right - 0.5 &&
			p.top < q.bottom - 0.5 && q.top < p.bottom - 0.5;
	}
	function none_overlap(what, els) {
		for (var i = 0; i < els.length; i++)
			for (var j = i + 1; j < els.length; j++)
				if (overlap(els[i], els[j]))
					out.errors.push(what + ': ' + name(els[i]) + ' overlaps ' + name(els[j]));
	}
	var cards = all('#verdict > .card');
	if (cards.length < 4) out.errors.push('the verdict has ' + cards.length + ' cards');
	none_overlap('verdict', cards);
	none_overlap('timeline', all('#timeline .tlgrid > *'));
	// The page's blocks, top to bottom: none may cover another.
	none_overlap('page', [].concat(all('#verdict'), all('table.hdr'), all('table.counts'),
		all('#timeline'), all('#filters'), all('section.rows > h3'), all('.run > p.why'),
		all('.run > table'), all('.run > p.fold'), all('section.rows > p'), all('table.procs')));
	// No table is squeezed: every column keeps room for a few words.
	all('table.evt, table.counts, table.procs').forEach(function (t) {
		if (!t.offsetParent) return;
		all('th').filter(function (h) { return t.contains(h); }).forEach(function (h) {
			if (box(h).width < 24) out.errors.push('a column of ' + name(t) + ' is ' +
				Math.round(box(h).width) + ' px wide');
		});
	});
	// Every denial is on the page, shown, and above the first folded run.
	var folds = all('details.more').filter(function (d) { return !d.closest('#blocked'); });
	var first_fold = folds.length ? box(folds[0]).top : Infinity;
	var deny = all('tr[data-dec="d-deny"]');
	out.denials = deny.length;
	deny.forEach(function (r) {
		var b = box(r);
		if (!r.offsetParent || b.height === 0) out.errors.push(r.id + ': a denial is hidden');
		else if (b.top > first_fold) out.errors.push(r.id + ': a denial is below a folded run');
	});
	// The row links reach their process.
	all('table.evt a[href^="#p"]').slice(0, 50).forEach(function (a) {
		if (!document.getElementById(a.getAttribute('href').slice(1)))
			out.errors.push('no process row for ' + a.getAttribute('href'));
	});
	out.rows = all('table.evt tbody tr').length;
	// The filters: decision deny leaves the denials and nothing else.
	var dec = document.querySelector('#filters select[name=dec]');
	if (dec) {
		dec.value = 'deny';
		dec.dispatchEvent(new Event('input', { bubbles: true }));
		var vis = all('table.evt tbody tr').filter(function (r) { return !r.hidden && r.offsetParent; });
		out.filtered = { shown: vis.length,
			other: vis.filter(function (r) { return r.dataset.dec !== 'd-deny'; }).length };
		dec.value = '';
		dec.dispatchEvent(new Event('input', { bubbles: true }));
	}
	out.bytes = document.documentElement.outerHTML.length;
	var pre = document.createElement('pre');
	pre.id = 'layout-result';
	pre.textContent = JSON.stringify(out);
	document.body.appendChild(pre);
});
