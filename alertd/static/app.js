/* Progressive enhancement only: live region search. Without it the Search button reloads the page. ES5 for old phones. */
(function () {
  var box = document.getElementById("q");
  var list = document.getElementById("region-results");
  var help = document.getElementById("region-help");
  var button = document.getElementById("search-btn");
  if (!box || !list || !window.fetch || !window.JSON) { return; }
  var lang = document.documentElement.lang || "uk";
  var timer = null;
  var last = "";

  function render(regions) {
    var items = list.querySelectorAll("li");
    var have = {};
    for (var i = 0; i < items.length; i++) {
      var input = items[i].querySelector("input");
      if (input.checked) { have[input.value] = true; } else { list.removeChild(items[i]); }
    }
    var added = 0;
    for (var j = 0; j < regions.length; j++) {
      var r = regions[j];
      if (have[r.code]) { continue; }
      var li = document.createElement("li");
      var label = document.createElement("label");
      var cb = document.createElement("input");
      cb.type = "checkbox"; cb.name = "regions"; cb.value = r.code;
      label.appendChild(cb);
      label.appendChild(document.createTextNode(" " + r.name));
      if (r.oblast) {
        var small = document.createElement("small");
        small.textContent = " " + r.oblast;
        label.appendChild(document.createTextNode(" "));
        label.appendChild(small);
      }
      li.appendChild(label);
      list.appendChild(li);
      added++;
    }
    help.textContent = added ? "" : help.getAttribute("data-empty");
  }

  function search() {
    var q = box.value.replace(/^\s+|\s+$/g, "");
    if (q.length < 2 || q === last) { return; }
    last = q;
    fetch("/api/regions?q=" + encodeURIComponent(q) + "&lang=" + lang, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) { if (q === last) { render(data.regions || []); } })
      .catch(function () { last = ""; });
  }

  box.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(search, 300); });
  box.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); last = ""; search(); } });
  if (button) { button.addEventListener("click", function (e) { e.preventDefault(); last = ""; search(); }); }
})();
