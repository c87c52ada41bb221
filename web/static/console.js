/*
 * hegate console behaviours. The pages carry no inline script (the CSP has
 * script-src 'self'), so what would be an onclick lives here, driven by
 * data-* attributes:
 *
 *   <form data-confirm="Revoke device X?" data-confirm-button="Revoke">
 *       (or data-confirm on one submit button of the form)
 *     asks in the layout's <dialog id="confirm-dialog"> before the form is
 *     submitted, natively or by htmx. data-confirm-title sets the heading.
 *
 *   <button type="button" data-copy="ID">
 *     copies the text (or the value, for an input) of the element with that
 *     id to the clipboard, and says so in #live-status.
 *
 *   <div data-chart="ID" aria-label="…"></div>
 *   <script type="application/json" id="ID">
 *     {"label": "Budget left (ε)", "x": [unix seconds…], "y": [budget left…],
 *      "step": true}
 *   </script>
 *     draws a uPlot line chart (a burn-down: x is time, y the budget left).
 *     Charts are drawn on load and again after htmx settles new content
 *     (htmx:afterSettle), when their element or their data island changed.
 *
 * No eval, no inline styles (sizes go through uPlot's API and CSSOM).
 */
(function () {
  'use strict';

  // ---- confirm dialogs -----------------------------------------------------

  var pendingConfirm = null; // {form, submitter} while the dialog is open

  function confirmSource(form, submitter) {
    if (submitter && submitter.hasAttribute && submitter.hasAttribute('data-confirm')) {
      return submitter;
    }
    if (form.hasAttribute('data-confirm')) {
      return form;
    }
    return null;
  }

  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (!(form instanceof HTMLFormElement)) {
      return;
    }
    if (form.hegateConfirmed) {
      form.hegateConfirmed = false;
      return;
    }
    var src = confirmSource(form, ev.submitter);
    if (!src) {
      return;
    }
    var dialog = document.getElementById('confirm-dialog');
    if (!dialog || typeof dialog.showModal !== 'function') {
      if (!window.confirm(src.getAttribute('data-confirm'))) {
        ev.preventDefault();
        ev.stopImmediatePropagation();
      }
      return;
    }
    // Capture phase on document: neither the browser nor htmx (which
    // listens on the form) sees this submit. The confirmed one comes later.
    ev.preventDefault();
    ev.stopImmediatePropagation();
    document.getElementById('confirm-dialog-title').textContent =
      src.getAttribute('data-confirm-title') || 'Are you sure?';
    document.getElementById('confirm-dialog-message').textContent = src.getAttribute('data-confirm');
    document.getElementById('confirm-dialog-confirm').textContent =
      src.getAttribute('data-confirm-button') || 'Confirm';
    dialog.returnValue = '';
    pendingConfirm = { form: form, submitter: ev.submitter || null };
    dialog.showModal();
  }, true);

  // The dialog's buttons are in a form method="dialog": a click closes it
  // with that button's value. Escape closes it with none.
  document.addEventListener('close', function (ev) {
    if (!ev.target || ev.target.id !== 'confirm-dialog') {
      return;
    }
    var p = pendingConfirm;
    pendingConfirm = null;
    if (!p || ev.target.returnValue !== 'confirm' || !p.form.isConnected) {
      return;
    }
    p.form.hegateConfirmed = true;
    // If nothing submits after all (say a listener cancels), forget it.
    window.setTimeout(function () { p.form.hegateConfirmed = false; }, 0);
    if (typeof p.form.requestSubmit === 'function') {
      var s = p.submitter && p.submitter.form === p.form ? p.submitter : undefined;
      p.form.requestSubmit(s);
    } else {
      p.form.submit();
    }
  }, true);

  // ---- copy to the clipboard -------------------------------------------------

  function announce(text) {
    var live = document.getElementById('live-status');
    if (!live) {
      return;
    }
    // Clear first, so that the same message twice is spoken twice.
    live.textContent = '';
    window.setTimeout(function () { live.textContent = text; }, 50);
  }

  function selectContents(el) {
    if (typeof el.select === 'function') {
      el.select();
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function copyText(text, el) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      selectContents(el);
      var ok = false;
      try {
        ok = document.execCommand('copy');
      } catch (e) {
        ok = false;
      }
      if (ok) {
        resolve();
      } else {
        reject(new Error('copy refused'));
      }
    });
  }

  document.addEventListener('click', function (ev) {
    var btn = ev.target && ev.target.closest ? ev.target.closest('[data-copy]') : null;
    if (!btn) {
      return;
    }
    var el = document.getElementById(btn.getAttribute('data-copy'));
    if (!el) {
      return;
    }
    ev.preventDefault();
    var text = (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement) ? el.value : el.textContent.trim();
    var label = btn.hegateLabel || btn.textContent;
    btn.hegateLabel = label;
    copyText(text, el).then(function () {
      btn.textContent = 'Copied';
      announce('Copied to the clipboard.');
    }, function () {
      selectContents(el);
      btn.textContent = 'Copy failed';
      announce('Could not copy. The text is selected: copy it with the keyboard.');
    }).then(function () {
      window.setTimeout(function () { btn.textContent = label; }, 2000);
    });
  });

  // ---- the user menu: close on Escape and on a click outside -----------------

  document.addEventListener('click', function (ev) {
    var open = document.querySelectorAll('details.user-menu[open]');
    for (var i = 0; i < open.length; i++) {
      if (!open[i].contains(ev.target)) {
        open[i].removeAttribute('open');
      }
    }
  });
  document.addEventListener('keydown', function (ev) {
    if (ev.key !== 'Escape') {
      return;
    }
    var open = document.querySelectorAll('details.user-menu[open]');
    for (var i = 0; i < open.length; i++) {
      open[i].removeAttribute('open');
      var summary = open[i].querySelector('summary');
      if (summary) {
        summary.focus();
      }
    }
  });

  // ---- navigation: at phone width, scroll the current entry into sight ------

  function revealCurrentNav() {
    var cur = document.querySelector('.sidenav [aria-current="page"]');
    if (!cur) {
      return;
    }
    var list = cur.closest('ul');
    if (list && list.scrollWidth > list.clientWidth) {
      var li = cur.parentElement;
      list.scrollLeft = Math.max(0, li.offsetLeft - (list.clientWidth - li.offsetWidth) / 2);
    }
  }

  // ---- charts ------------------------------------------------------------------

  var charts = []; // {el, island, data (the island's text), plot}

  function chartHeight(el) {
    var h = parseInt(el.getAttribute('data-chart-height'), 10);
    return h > 0 ? h : 240;
  }

  function chartWidth(el) {
    return Math.max(Math.floor(el.clientWidth), 200);
  }

  function chartOptions(el, spec) {
    var series = {
      label: spec.label || 'Budget left',
      stroke: '#0a58ca',
      width: 2,
      fill: 'rgba(10, 88, 202, 0.12)'
    };
    if (spec.step && window.uPlot.paths && window.uPlot.paths.stepped) {
      series.paths = window.uPlot.paths.stepped({ align: 1 });
    }
    var axis = {
      stroke: '#1b1f24',
      grid: { stroke: '#e3e6ea', width: 1 },
      ticks: { stroke: '#d0d5dc', width: 1 }
    };
    return {
      width: chartWidth(el),
      height: chartHeight(el),
      scales: {
        x: { time: true },
        y: {
          range: function (u, min, max) {
            var top = Math.max(max || 0, spec.total || 0);
            return [0, top > 0 ? top * 1.05 : 1];
          }
        }
      },
      series: [{ label: spec.xLabel || 'Time' }, series],
      axes: [
        Object.assign({}, axis),
        Object.assign({}, axis, spec.yLabel ? { label: spec.yLabel } : {})
      ]
    };
  }

  function drawChart(el) {
    var id = el.getAttribute('data-chart');
    var island = id ? document.getElementById(id) : null;
    if (!island) {
      console.error('hegate: no data island #' + id + ' for a chart');
      return;
    }
    var text = island.textContent;
    var entry = null;
    for (var i = 0; i < charts.length; i++) {
      if (charts[i].el === el) {
        entry = charts[i];
      }
    }
    if (entry && entry.island === island && entry.data === text) {
      return; // drawn already, from the same data
    }
    var spec;
    try {
      spec = JSON.parse(text);
    } catch (e) {
      console.error('hegate: the data island #' + id + ' is not JSON: ' + e.message);
      return;
    }
    if (!spec || !Array.isArray(spec.x) || !Array.isArray(spec.y)) {
      console.error('hegate: the data island #' + id + ' has no x and y arrays');
      return;
    }
    if (entry) {
      entry.plot.destroy();
    } else {
      entry = { el: el };
      charts.push(entry);
      if (resizeObserver) {
        resizeObserver.observe(el);
      }
    }
    el.textContent = '';
    entry.island = island;
    entry.data = text;
    entry.plot = new window.uPlot(chartOptions(el, spec), [spec.x, spec.y], el);
    el.setAttribute('data-chart-drawn', 'true');
  }

  function drawCharts() {
    // Forget the charts whose element htmx swapped out.
    charts = charts.filter(function (c) {
      if (c.el.isConnected) {
        return true;
      }
      c.plot.destroy();
      if (resizeObserver) {
        resizeObserver.unobserve(c.el);
      }
      return false;
    });
    if (typeof window.uPlot !== 'function') {
      return;
    }
    var els = document.querySelectorAll('[data-chart]');
    for (var i = 0; i < els.length; i++) {
      drawChart(els[i]);
    }
  }

  // A chart follows its element's width. The resize happens in the next
  // frame, not in the observer's callback, which would have the observer
  // report a loop.
  var resizeObserver = typeof ResizeObserver === 'function' ? new ResizeObserver(function (entries) {
    window.requestAnimationFrame(function () {
      for (var i = 0; i < entries.length; i++) {
        resizeChart(entries[i].target);
      }
    });
  }) : null;

  function resizeChart(el) {
    for (var i = 0; i < charts.length; i++) {
      var c = charts[i];
      if (c.el === el && el.isConnected) {
        var w = chartWidth(el);
        if (w !== c.plot.width) {
          c.plot.setSize({ width: w, height: chartHeight(el) });
        }
      }
    }
  }

  var resizeTimer = 0;
  window.addEventListener('resize', function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () {
      if (!resizeObserver) {
        for (var i = 0; i < charts.length; i++) {
          resizeChart(charts[i].el);
        }
      }
      revealCurrentNav();
    }, 100);
  });

  document.addEventListener('htmx:afterSettle', drawCharts);

  function init() {
    revealCurrentNav();
    drawCharts();
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
