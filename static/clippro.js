// CLIP-Pro pages: uploads with per-file progress, live captioning status, the timeline, the full-screen viewer,
// selecting many photos in a grid.
// Plain JavaScript, no framework; every page works without it, only less live.
(function () {
  "use strict";

  var POLL_MS = 2000;

  function csrfToken(root) {
    var input = (root || document).querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function getJson(url, done) {
    var request = new XMLHttpRequest();
    request.open("GET", url);
    request.setRequestHeader("Accept", "application/json");
    request.onload = function () {
      if (request.status === 200) {
        try { done(JSON.parse(request.responseText)); return; } catch (error) { /* fall through */ }
      }
      done(null);
    };
    request.onerror = function () { done(null); };
    request.send();
  }

  function postForm(url, body, done) {
    var request = new XMLHttpRequest();
    request.open("POST", url);
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.onload = function () {
      try { done(JSON.parse(request.responseText)); } catch (error) { done(null); }
    };
    request.onerror = function () { done(null); };
    request.send(body);
  }

  // "IMG_20240612_183455_holiday.jpg" -> "IMG_20240612…_holiday.jpg": the start and the extension tell files apart.
  function shortenMiddle(text, length) {
    if (text.length <= length) return text;
    var tail = Math.floor((length - 1) / 2);
    return text.slice(0, length - 1 - tail) + "…" + text.slice(text.length - tail);
  }

  // Forms that destroy something ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  // Gallery grid ------------------------------------------------------------------------------------------
  var grid = document.querySelector("[data-photo-grid]");
  var polling = null;

  function tileText(photo) {
    if (photo.translation) return photo.translation;
    if (photo.caption) return photo.caption;
    if (photo.status === "failed") return "Captioning failed";
    return "Waiting for a caption…";
  }

  function buildTile(photo) {
    var tile = element("li", "tile tile--" + photo.status);
    tile.setAttribute("data-photo", photo.id);
    tile.setAttribute("data-image", photo.image);
    if (photo.can_manage) tile.setAttribute("data-manage", "");
    var link = element("a", "tile__image");
    link.href = photo.url;
    link.setAttribute("data-viewer-link", "");
    var image = element("img");
    image.src = photo.thumbnail;
    image.alt = photo.alt || photo.name || "";
    image.loading = "lazy";
    link.appendChild(image);
    var body = element("div", "tile__body");
    var unsure = element("p", "tile__unsure");
    unsure.setAttribute("data-unsure", "");
    var caption = element("p", "tile__caption");
    caption.setAttribute("data-caption", "");
    var status = element("p", "tile__status");
    var badge = element("span", "status");
    badge.setAttribute("data-status", "");
    var error = element("span", "tile__error");
    error.setAttribute("data-error", "");
    status.appendChild(badge);
    status.appendChild(document.createTextNode(" "));
    status.appendChild(error);
    body.appendChild(unsure);
    body.appendChild(caption);
    body.appendChild(status);
    var removeUrl = grid && grid.getAttribute("data-remove-url");
    if (removeUrl) body.appendChild(removeForm(removeUrl, photo.id));
    tile.appendChild(link);
    tile.appendChild(body);
    return tile;
  }

  // "Remove from this gallery", as the server renders it on the gallery's own tiles (_photo_tile.html).
  function removeForm(action, photoId) {
    var form = element("form", "tile__remove");
    form.method = "post";
    form.action = action;
    form.setAttribute("data-remove-from-gallery", "");
    [["csrfmiddlewaretoken", csrfToken()], ["photo", photoId]].forEach(function (pair) {
      var input = element("input");
      input.type = "hidden";
      input.name = pair[0];
      input.value = pair[1];
      form.appendChild(input);
    });
    var button = element("button", "button button--ghost button--small", "Remove from this gallery");
    button.type = "submit";
    form.appendChild(button);
    return form;
  }

  function updateTile(tile, photo) {
    tile.className = "tile tile--" + photo.status;
    // A guess about a photo unlike the model's training images is marked as one, and is never the alt text.
    var unsure = tile.querySelector("[data-unsure]");
    unsure.textContent = photo.unsure ? photo.unsure + " Its guess:" : "";
    unsure.hidden = !photo.unsure;
    tile.querySelector("[data-caption]").textContent = tileText(photo);
    var badge = tile.querySelector("[data-status]");
    badge.className = "status status--" + photo.status;
    badge.textContent = photo.translation_status === "pending" && photo.status === "captioned" ? "Translating…" : photo.status_label;
    tile.querySelector("[data-error]").textContent = photo.status === "failed" ? photo.error : "";
    var image = tile.querySelector("img");
    if (image && photo.alt) image.alt = photo.alt;
    updateUploadRow(photo);
  }

  // An upload's row follows its photo: "Uploaded — captioning queued" turns to "Captioned" (or the failure).
  function updateUploadRow(photo) {
    var row = document.querySelector('[data-upload-photo="' + photo.id + '"]');
    if (!row) return;
    if (photo.status === "captioned") {
      row.className = "upload upload--captioned";
      row.querySelector(".upload__result").textContent = "Captioned";
    } else if (photo.status === "failed") {
      row.className = "upload upload--refused";
      row.querySelector(".upload__result").textContent = "Captioning failed: " + photo.error;
    }
  }

  function showPhoto(photo) {
    if (!grid) return;
    var tile = grid.querySelector('[data-photo="' + photo.id + '"]');
    if (!tile) {
      tile = buildTile(photo);
      grid.insertBefore(tile, grid.firstChild);
      var empty = document.querySelector("[data-empty-grid]");
      if (empty) empty.remove();
    }
    updateTile(tile, photo);
  }

  // A list that arrives with its first page of photos and gets the next ones as its "More photos" link scrolls
  // into view (or is clicked). `urlFor(page)` is the JSON address of a page, `place(photo)` the list a tile goes in,
  // `loaded()` is told of each page added.
  function loadPagesOnScroll(link, urlFor, place, loaded) {
    var loading = false;
    var observer = null;

    function loadNext() {
      if (!link || loading) return;
      loading = true;
      getJson(urlFor(link.getAttribute("data-page")), function (data) {
        loading = false;
        if (!data) return;
        data.photos.forEach(function (photo) {
          if (document.querySelector('.tile[data-photo="' + photo.id + '"]')) return;
          var tile = buildTile(photo);
          place(photo).appendChild(tile);
          updateTile(tile, photo);
        });
        loaded();
        if (data.next_page) {
          link.setAttribute("data-page", String(data.next_page));
          link.href = link.href.replace(/page=\d+/, "page=" + data.next_page);
          if (observer) {  // observed anew, so a link still in view loads the page after too
            observer.unobserve(link);
            observer.observe(link);
          }
        } else {
          link.parentNode.remove();
          link = null;
        }
      });
    }

    link.addEventListener("click", function (event) {
      event.preventDefault();
      loadNext();
    });
    if ("IntersectionObserver" in window) {
      observer = new IntersectionObserver(function (entries) {
        if (entries.some(function (entry) { return entry.isIntersecting; })) loadNext();
      }, { rootMargin: "800px" });
      observer.observe(link);
    }
  }

  // The gallery grid's status poll asks for every page shown so far.
  var firstPage = grid ? grid.getAttribute("data-page") || "1" : "1";
  var pagesShown = 1;
  var more = document.querySelector("[data-more-photos]");
  if (grid && more) {
    loadPagesOnScroll(
      more,
      function (page) { return grid.getAttribute("data-status-url") + "?page=" + page; },
      function () { return grid; },
      function () { pagesShown += 1; }
    );
  }

  // Captions shown in another language: the page asks (POST) for the translations it lacks, for the pages shown,
  // and polls until they are there. A request that adds none stops the asking (nothing more can be done).
  var translateForm = document.querySelector("[data-translate-captions]");
  var askingTranslations = false;

  function askForMissingTranslations(photos) {
    if (!translateForm || askingTranslations) return;
    var missing = photos.some(function (photo) { return photo.caption && !photo.translation_status; });
    if (!missing) return;
    askingTranslations = true;
    var body = new FormData(translateForm);
    body.set("page", firstPage);
    body.set("pages", String(pagesShown));
    postForm(translateForm.getAttribute("action"), body, function (data) {
      askingTranslations = false;
      if (!data || !data.requested) translateForm = null;
      startPolling();
    });
  }

  function pollGrid() {
    if (!grid) return;
    var url = grid.getAttribute("data-status-url") + "?page=" + firstPage + "&pages=" + pagesShown;
    getJson(url, function (data) {
      if (data) {
        data.photos.slice().reverse().forEach(showPhoto);
        grid.setAttribute("data-busy", String(data.busy));
        askForMissingTranslations(data.photos);
      }
      polling = data && data.busy === 0 ? null : window.setTimeout(pollGrid, POLL_MS);
    });
  }

  function startPolling() {
    if (polling === null) polling = window.setTimeout(pollGrid, 300);
  }

  // One look at the status at once (captions or translations may be under way); it goes on while busy.
  if (grid) startPolling();

  // Uploads: each file in its own request, with its own progress bar and result ------------------------------
  var uploader = document.querySelector("[data-uploader]");
  if (uploader) {
    var uploadUrl = uploader.getAttribute("data-upload-url");
    var list = uploader.querySelector("[data-upload-list]");
    var input = uploader.querySelector("[data-file-input]");
    var dropzone = uploader.querySelector("[data-dropzone]");
    var queue = [];
    var active = 0;
    var PARALLEL = 2;

    function addFiles(files) {
      Array.prototype.forEach.call(files, function (file) {
        var row = element("li", "upload upload--waiting");
        var name = element("span", "upload__name", shortenMiddle(file.name, 32));
        name.title = file.name;
        var bar = element("progress", "upload__bar");
        bar.max = 100;
        bar.value = 0;
        var result = element("span", "upload__result", "Waiting…");
        row.appendChild(name);
        row.appendChild(bar);
        row.appendChild(result);
        list.appendChild(row);
        queue.push({ file: file, row: row, bar: bar, result: result });
      });
      pump();
    }

    function finish(item, state, message) {
      item.row.className = "upload upload--" + state;
      item.result.textContent = message;
      if (state !== "uploading") item.bar.value = 100;
      active -= 1;
      pump();
    }

    function send(item) {
      var form = new FormData();
      form.append("file", item.file, item.file.name);
      var request = new XMLHttpRequest();
      request.open("POST", uploadUrl);
      request.setRequestHeader("X-CSRFToken", csrfToken(uploader));
      request.setRequestHeader("Accept", "application/json");
      item.row.className = "upload upload--uploading";
      item.result.textContent = "Uploading…";
      request.upload.onprogress = function (event) {
        if (event.lengthComputable) item.bar.value = Math.round((event.loaded / event.total) * 100);
      };
      request.onload = function () {
        var data = null;
        try { data = JSON.parse(request.responseText); } catch (error) { data = null; }
        if (data && data.ok) {
          // outcome: "uploaded" (a new photo), "added" (one of yours, now also here) or "duplicate" (here already).
          finish(item, data.outcome === "duplicate" ? "duplicate" : "done", data.message);
          if (data.outcome === "uploaded") item.row.setAttribute("data-upload-photo", data.photo.id);
          showPhoto(data.photo);
          startPolling();
        } else {
          var message = data && data.error ? data.error : "Upload failed (HTTP " + request.status + ").";
          finish(item, "refused", message);
        }
      };
      request.onerror = function () { finish(item, "refused", "The connection was lost; try again."); };
      request.send(form);
    }

    function pump() {
      while (active < PARALLEL && queue.length) {
        active += 1;
        send(queue.shift());
      }
    }

    input.addEventListener("change", function () {
      addFiles(input.files);
      input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (type) {
      dropzone.addEventListener(type, function (event) {
        event.preventDefault();
        dropzone.classList.add("dropzone--over");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      dropzone.addEventListener(type, function (event) {
        event.preventDefault();
        dropzone.classList.remove("dropzone--over");
      });
    });
    dropzone.addEventListener("drop", function (event) {
      if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
    });
  }

  // Timeline: the next photos come as its end scrolls into view, each into its month's section -------------------
  var timeline = document.querySelector("[data-timeline]");
  var moreTimeline = document.querySelector("[data-more-timeline]");

  function timelineMonth(photo) {
    var sections = timeline.querySelectorAll("[data-month]");
    var last = sections[sections.length - 1];
    if (last && last.getAttribute("data-month") === photo.month) return last.querySelector("[data-photo-list]");
    var section = element("section", "timeline__month");
    section.setAttribute("data-month", photo.month);
    section.appendChild(element("h2", "timeline__title", photo.month_label));
    var list = element("ul", "photo-grid photo-grid--dense");
    list.setAttribute("data-photo-list", "");
    section.appendChild(list);
    timeline.appendChild(section);
    return list;
  }

  if (timeline && moreTimeline) {
    loadPagesOnScroll(
      moreTimeline,
      function (page) {
        var url = timeline.getAttribute("data-page-url");
        return url + (url.indexOf("?") === -1 ? "?" : "&") + "page=" + page;
      },
      timelineMonth,
      function () {}
    );
  }

  // Viewer: any grid's photo opens full screen, with its caption and state beside it --------------------------
  // Previous/next with the arrow keys, the buttons or a swipe; Z or a click on the photo zooms; Esc closes.
  // Without JavaScript (or with Ctrl/Cmd-click) the tile's link opens the photo page as before.
  var viewer = null;
  var viewerTile = null;
  var viewerRefresh = null;

  function viewerTiles() {
    return Array.prototype.slice.call(document.querySelectorAll(".tile[data-image]"));
  }

  function buildViewer() {
    var dialog = element("dialog", "viewer");
    dialog.setAttribute("aria-label", "Photo viewer");
    dialog.setAttribute("data-viewer", "");
    dialog.innerHTML =
      '<div class="viewer__stage" data-viewer-stage><img class="viewer__image" data-viewer-image alt=""></div>' +
      '<aside class="viewer__side">' +
      '<p class="viewer__position" data-viewer-position></p>' +
      '<p class="viewer__caption" data-viewer-caption></p>' +
      '<p class="viewer__state"><span class="status" data-viewer-status></span> <span class="tile__error" data-viewer-error></span></p>' +
      '<p><a class="button button--small" data-viewer-open href="#">Open the photo page</a></p>' +
      '<p class="viewer__keys muted">← → previous / next · Z zoom · Esc close</p>' +
      "</aside>" +
      '<div class="viewer__controls">' +
      '<button type="button" class="viewer__button" data-viewer-prev aria-label="Previous photo">‹</button>' +
      '<button type="button" class="viewer__button" data-viewer-next aria-label="Next photo">›</button>' +
      '<button type="button" class="viewer__button" data-viewer-zoom aria-pressed="false" aria-label="Zoom">⤢</button>' +
      '<button type="button" class="viewer__button" data-viewer-close aria-label="Close the viewer">×</button>' +
      "</div>";
    document.body.appendChild(dialog);
    dialog.querySelector("[data-viewer-prev]").addEventListener("click", function () { stepViewer(-1); });
    dialog.querySelector("[data-viewer-next]").addEventListener("click", function () { stepViewer(1); });
    dialog.querySelector("[data-viewer-zoom]").addEventListener("click", toggleZoom);
    dialog.querySelector("[data-viewer-image]").addEventListener("click", toggleZoom);
    dialog.querySelector("[data-viewer-close]").addEventListener("click", function () { dialog.close(); });
    dialog.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.key === "ArrowLeft") { stepViewer(-1); event.preventDefault(); }
      else if (event.key === "ArrowRight") { stepViewer(1); event.preventDefault(); }
      else if (event.key === "z" || event.key === "Z") { toggleZoom(); event.preventDefault(); }
    });
    dialog.addEventListener("close", function () {
      window.clearInterval(viewerRefresh);
      document.body.classList.remove("viewer-open");
      var link = viewerTile && viewerTile.querySelector("[data-viewer-link]");
      if (link) link.focus();
    });
    var touchStart = null;
    var stage = dialog.querySelector("[data-viewer-stage]");
    stage.addEventListener("touchstart", function (event) {
      if (event.touches.length === 1) touchStart = { x: event.touches[0].clientX, y: event.touches[0].clientY };
    }, { passive: true });
    stage.addEventListener("touchend", function (event) {
      if (!touchStart || dialog.classList.contains("viewer--zoomed")) return;
      var dx = event.changedTouches[0].clientX - touchStart.x;
      var dy = event.changedTouches[0].clientY - touchStart.y;
      touchStart = null;
      if (Math.abs(dx) > 50 && Math.abs(dx) > 1.5 * Math.abs(dy)) stepViewer(dx < 0 ? 1 : -1);
    });
    return dialog;
  }

  function toggleZoom() {
    var zoomed = viewer.classList.toggle("viewer--zoomed");
    viewer.querySelector("[data-viewer-zoom]").setAttribute("aria-pressed", String(zoomed));
  }

  function renderViewer() {
    var tiles = viewerTiles();
    var index = tiles.indexOf(viewerTile);
    var status = viewerTile.querySelector("[data-status]");
    var link = viewerTile.querySelector("[data-viewer-link]");
    var image = viewer.querySelector("[data-viewer-image]");
    var source = viewerTile.getAttribute("data-image");
    if (image.getAttribute("src") !== source) {
      image.src = source;
      image.alt = viewerTile.querySelector("img").alt;
    }
    viewer.querySelector("[data-viewer-position]").textContent = (index + 1) + " of " + tiles.length;
    viewer.querySelector("[data-viewer-caption]").textContent = viewerTile.querySelector("[data-caption]").textContent;
    var badge = viewer.querySelector("[data-viewer-status]");
    badge.className = status.className;
    badge.textContent = status.textContent;
    viewer.querySelector("[data-viewer-error]").textContent = viewerTile.querySelector("[data-error]").textContent;
    viewer.querySelector("[data-viewer-open]").setAttribute("href", link.getAttribute("href"));
    viewer.querySelector("[data-viewer-prev]").disabled = index <= 0;
    viewer.querySelector("[data-viewer-next]").disabled = index >= tiles.length - 1;
    [tiles[index - 1], tiles[index + 1]].forEach(function (neighbour) {
      if (neighbour) (new Image()).src = neighbour.getAttribute("data-image");  // ready before it is asked for
    });
  }

  function stepViewer(step) {
    var tiles = viewerTiles();
    var next = tiles[tiles.indexOf(viewerTile) + step];
    if (!next) return;
    viewerTile = next;
    viewer.classList.remove("viewer--zoomed");
    viewer.querySelector("[data-viewer-zoom]").setAttribute("aria-pressed", "false");
    renderViewer();
  }

  function openViewer(tile) {
    if (!viewer) viewer = buildViewer();
    viewerTile = tile;
    viewer.classList.remove("viewer--zoomed");
    renderViewer();
    document.body.classList.add("viewer-open");
    if (!viewer.open) viewer.showModal();
    viewer.querySelector("[data-viewer-close]").focus();
    // The grid's status poll keeps the tiles current; the viewer shows what they say.
    window.clearInterval(viewerRefresh);
    viewerRefresh = window.setInterval(renderViewer, POLL_MS);
  }

  if (typeof HTMLDialogElement === "function") {
    document.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("[data-viewer-link]");
      if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
      var tile = link.closest(".tile[data-image]");
      if (!tile) return;
      event.preventDefault();
      openViewer(tile);
    });
  }

  // Selecting many photos: "Select" turns a grid's clicks (and Space or Enter on a tile) into choosing photos;
  // a bar at the bottom says how many and offers what may be done to them. Esc, or Clear, ends it.
  var selection = document.querySelector("[data-selection]");
  var selectionBar = document.querySelector("[data-selection-bar]");
  var selecting = false;

  function selectionTiles() {
    return Array.prototype.slice.call(document.querySelectorAll(".tile[data-photo][data-selected]"));
  }

  function selectedIds() {
    return selectionTiles().map(function (tile) { return tile.getAttribute("data-photo"); });
  }

  function selectionMessage(text) {
    selectionBar.querySelector("[data-selection-result]").textContent = text;
  }

  function renderSelection() {
    var tiles = selectionTiles();
    var manageable = tiles.filter(function (tile) { return tile.hasAttribute("data-manage"); }).length;
    selectionBar.querySelector("[data-selection-count]").textContent = tiles.length + " selected";
    selectionBar.hidden = !selecting;
    document.body.classList.toggle("selecting", selecting);
    // Only what the visitor may do: changing needs at least one photo of theirs (the server checks each again).
    ["[data-selection-recaption]", "[data-selection-delete]"].forEach(function (selector) {
      var button = selectionBar.querySelector(selector);
      if (button) button.hidden = manageable === 0;
    });
    selectionBar.querySelectorAll("button:not([data-selection-clear])").forEach(function (button) {
      button.disabled = tiles.length === 0;
    });
  }

  function markTile(tile, selected) {
    var link = tile.querySelector("[data-viewer-link]");
    if (selected) tile.setAttribute("data-selected", "");
    else tile.removeAttribute("data-selected");
    if (link) link.setAttribute("aria-checked", String(selected));
  }

  function setSelecting(on) {
    selecting = on;
    selection.querySelector("[data-selection-toggle]").setAttribute("aria-pressed", String(on));
    selection.querySelector("[data-selection-hint]").hidden = !on;
    document.querySelectorAll(".tile[data-photo] [data-viewer-link]").forEach(function (link) {
      if (on) {
        link.setAttribute("role", "checkbox");
        link.setAttribute("aria-checked", String(link.closest(".tile").hasAttribute("data-selected")));
      } else {
        link.removeAttribute("role");
        link.removeAttribute("aria-checked");
      }
    });
    if (!on) selectionTiles().forEach(function (tile) { markTile(tile, false); });
    selectionMessage("");
    renderSelection();
  }

  function toggleTile(link) {
    var tile = link.closest(".tile[data-photo]");
    if (!link.hasAttribute("role")) {  // a tile loaded while selecting
      link.setAttribute("role", "checkbox");
    }
    markTile(tile, !tile.hasAttribute("data-selected"));
    renderSelection();
  }

  function selectionLink(event) {
    return selecting && event.target.closest ? event.target.closest(".tile[data-photo] [data-viewer-link]") : null;
  }

  function postSelection(url, body, done, method) {
    var request = new XMLHttpRequest();
    request.open(method || "POST", url);
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("Content-Type", "application/json");
    request.setRequestHeader("X-CSRFToken", csrfToken(document.querySelector("[data-selection-download-form]")));
    request.onload = function () {
      var data = null;
      try { data = JSON.parse(request.responseText); } catch (error) { data = null; }
      done(request.status, data);
    };
    request.onerror = function () { done(0, null); };
    request.send(JSON.stringify(body));
  }

  // "2 deleted. 1 not deleted: Only the photo's owner or the gallery's owner can change it. 1 not found."
  function describeResults(status, data, done) {
    if (!data || status >= 400 || !data.results) {
      return data && data.error ? data.error.message : "That did not work (HTTP " + status + "); try again.";
    }
    var counts = {};
    var reasons = {};
    data.results.forEach(function (result) {
      counts[result.outcome] = (counts[result.outcome] || 0) + 1;
      if (result.message) reasons[result.message] = true;
    });
    var parts = [];
    var doneCount = data.results.length - (counts.forbidden || 0);
    if (doneCount) parts.push(doneCount + " " + done + ".");
    if (counts.forbidden) parts.push(counts.forbidden + " refused: " + Object.keys(reasons).join(" "));
    if (data.not_found) parts.push(data.not_found + " not found.");
    return parts.join(" ") || "Nothing to do.";
  }

  // The album endpoint's answer: "2 added to Summer. 1 already there. 1 not yours to add."
  function describeAlbumResults(status, data, title) {
    if (!data || status >= 400 || !data.results) return describeResults(status, data, "");
    var counts = {};
    data.results.forEach(function (result) { counts[result.outcome] = (counts[result.outcome] || 0) + 1; });
    var parts = [];
    if (counts.added) parts.push(counts.added + " added to " + title + ".");
    if (counts.already_in_gallery) parts.push(counts.already_in_gallery + " already there.");
    if (counts.not_found) parts.push(counts.not_found + " not yours to add.");
    return parts.join(" ") || "Nothing to do.";
  }

  // `button` opens `dialog` (when `ready()` says so); `confirmed()` runs once it closes with `value`. Any other way
  // out (Cancel, Esc) puts the focus back on the button.
  function askFirst(button, dialog, value, ready, confirmed) {
    button.addEventListener("click", function () {
      if (!ready()) return;
      dialog.returnValue = "";
      dialog.showModal();
    });
    dialog.addEventListener("close", function () {
      if (dialog.returnValue === value) confirmed();
      else button.focus();
    });
  }

  if (selection && selectionBar) {
    selection.hidden = false;
    var zipLimit = parseInt(selection.getAttribute("data-zip-limit"), 10);
    var selectionLimit = parseInt(selection.getAttribute("data-selection-limit"), 10);

    selection.querySelector("[data-selection-toggle]").addEventListener("click", function () {
      setSelecting(!selecting);
    });
    selectionBar.querySelector("[data-selection-clear]").addEventListener("click", function () { setSelecting(false); });

    // Before the viewer's own listener (capture): while selecting, a click chooses the photo instead.
    document.addEventListener("click", function (event) {
      var link = selectionLink(event);
      if (!link) return;
      event.preventDefault();
      event.stopPropagation();
      toggleTile(link);
    }, true);
    document.addEventListener("keydown", function (event) {
      if (!selecting || event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.key === "Escape" && !document.querySelector("dialog[open]")) {
        setSelecting(false);
        event.preventDefault();
        return;
      }
      var link = (event.key === " " || event.key === "Enter") && selectionLink(event);
      if (!link) return;
      event.preventDefault();  // no scrolling (Space), no following the link (Enter)
      toggleTile(link);
    });

    selectionBar.querySelector("[data-selection-download-button]").addEventListener("click", function () {
      var ids = selectedIds();
      if (ids.length > zipLimit) {
        selectionMessage("At most " + zipLimit + " photos go into one zip; " + ids.length + " are selected.");
        return;
      }
      var form = document.querySelector("[data-selection-download-form]");
      form.querySelectorAll("input[name=photos]").forEach(function (input) { input.remove(); });
      ids.forEach(function (id) {
        var input = element("input");
        input.type = "hidden";
        input.name = "photos";
        input.value = id;
        form.appendChild(input);
      });
      form.submit();  // the zip downloads as it is written; the page stays
      selectionMessage("Downloading " + ids.length + " photo" + (ids.length === 1 ? "" : "s") + " as a zip…");
    });

    var tooMany = function (ids) {
      if (ids.length <= selectionLimit) return false;
      selectionMessage("At most " + selectionLimit + " photos at once; " + ids.length + " are selected.");
      return true;
    };

    var recaptionButton = selectionBar.querySelector("[data-selection-recaption]");
    if (recaptionButton) {
      recaptionButton.addEventListener("click", function () {
        var ids = selectedIds();
        if (tooMany(ids)) return;
        selectionMessage("Asking…");
        postSelection(selection.getAttribute("data-recaption-url"), { photos: ids }, function (status, data) {
          selectionMessage(describeResults(status, data, "queued to be captioned again"));
          if (data && data.results) {
            data.results.forEach(function (result) {
              var tile = document.querySelector('.tile[data-photo="' + result.id + '"]');
              if (result.outcome === "queued" && tile) {
                tile.className = "tile tile--queued";
                tile.querySelector("[data-status]").className = "status status--queued";
                tile.querySelector("[data-status]").textContent = "Queued";
              }
            });
            startPolling();
          }
        });
      });
    }

    var deleteDialog = document.querySelector("[data-selection-confirm-delete]");
    var deleteButton = selectionBar.querySelector("[data-selection-delete]");
    if (deleteButton && deleteDialog) {
      askFirst(deleteButton, deleteDialog, "delete", function () {
        var ids = selectedIds();
        if (tooMany(ids)) return false;
        deleteDialog.querySelector("[data-selection-delete-question]").textContent =
          "Delete " + ids.length + " photo" + (ids.length === 1 ? "" : "s") + "?";
        return true;
      }, function () {
        var ids = selectedIds();
        selectionMessage("Deleting…");
        postSelection(selection.getAttribute("data-delete-url"), { photos: ids }, function (status, data) {
          if (data && data.results) {
            data.results.forEach(function (result) {
              var tile = document.querySelector('.tile[data-photo="' + result.id + '"]');
              if (result.outcome === "deleted" && tile) tile.remove();
            });
          }
          renderSelection();
          selectionMessage(describeResults(status, data, "deleted"));
        });
      });
    }

    var galleriesDialog = document.querySelector("[data-selection-galleries]");
    var addButton = selectionBar.querySelector("[data-selection-add]");
    if (addButton && galleriesDialog) {
      askFirst(addButton, galleriesDialog, "add", function () { return true; }, function () {
        var chosen = galleriesDialog.querySelector("input[name=gallery]:checked");
        if (!chosen) return;
        var url = galleriesDialog.getAttribute("data-add-url").replace("PUBLIC_ID", encodeURIComponent(chosen.value));
        var title = chosen.parentNode.textContent.trim();
        selectionMessage("Adding…");
        postSelection(url, { photos: selectedIds() }, function (status, data) {
          selectionMessage(describeAlbumResults(status, data, title));
        });
      });
    }
    // A gallery's owner and editors take the selection out of this gallery (the photos stay in their libraries).
    var removeButton = selectionBar.querySelector("[data-selection-remove]");
    if (removeButton) {
      removeButton.addEventListener("click", function () {
        var ids = selectedIds();
        if (tooMany(ids)) return;
        selectionMessage("Removing…");
        postSelection(removeButton.getAttribute("data-remove-url"), { photos: ids }, function (status, data) {
          if (!data || status >= 400 || !data.results) {
            selectionMessage(describeResults(status, data, ""));
            return;
          }
          var removed = 0;
          data.results.forEach(function (result) {
            if (result.outcome !== "removed") return;
            removed += 1;
            var tile = document.querySelector('.tile[data-photo="' + result.photo + '"]');
            if (tile) tile.remove();
          });
          selectionMessage(removed + " removed from this gallery.");
          renderSelection();
        }, "DELETE");
      });
    }
    renderSelection();
  }

  // Photo page: reload once the caption or the translation it waits for has arrived ---------------------------
  var photoPage = document.querySelector("[data-photo-page]");
  // In another language with no translation yet: ask for it (the same POST as the button), then wait for it.
  var translateCaption = photoPage && photoPage.querySelector("[data-translate-caption]");
  if (translateCaption) translateCaption.submit();
  else if (photoPage) {
    var waitingPhoto = ["queued", "processing"].indexOf(photoPage.getAttribute("data-photo-status")) !== -1;
    var waitingTranslation = photoPage.getAttribute("data-translation-status") === "pending";
    var pollPhoto = function () {
      getJson(photoPage.getAttribute("data-status-url"), function (data) {
        if (data) {
          var photoDone = ["queued", "processing"].indexOf(data.status) === -1;
          var translationDone = data.translation_status !== "pending";
          if ((waitingPhoto && photoDone) || (waitingTranslation && translationDone)) {
            window.location.reload();
            return;
          }
        }
        window.setTimeout(pollPhoto, POLL_MS);
      });
    };
    if (waitingPhoto || waitingTranslation) window.setTimeout(pollPhoto, POLL_MS);
  }
})();
