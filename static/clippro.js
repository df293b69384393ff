// CLIP-Pro pages: uploads with per-file progress, live captioning status, the language picker.
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

  // Language picker: choosing a language reloads the page with ?lang= (remembered for the session).
  document.querySelectorAll("[data-language-picker] select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

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
    var link = element("a", "tile__image");
    link.href = photo.url;
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
    tile.appendChild(link);
    tile.appendChild(body);
    return tile;
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

  // The grid arrives with its first page of photos; the next pages come as its end scrolls into view, and the
  // status poll asks for every page shown so far.
  var firstPage = grid ? grid.getAttribute("data-page") || "1" : "1";
  var pagesShown = 1;
  var more = document.querySelector("[data-more-photos]");
  var loadingMore = false;
  var moreObserver = null;

  function loadMorePhotos() {
    if (!more || loadingMore) return;
    loadingMore = true;
    getJson(grid.getAttribute("data-status-url") + "?page=" + more.getAttribute("data-page"), function (data) {
      loadingMore = false;
      if (!data) return;
      data.photos.forEach(function (photo) {
        if (grid.querySelector('[data-photo="' + photo.id + '"]')) return;
        var tile = buildTile(photo);
        grid.appendChild(tile);
        updateTile(tile, photo);
      });
      pagesShown += 1;
      if (data.next_page) {
        more.setAttribute("data-page", String(data.next_page));
        more.href = "?page=" + data.next_page;
        if (moreObserver) {  // observed anew, so a link still in view loads the page after too
          moreObserver.unobserve(more);
          moreObserver.observe(more);
        }
      } else {
        more.parentNode.remove();
        more = null;
      }
    });
  }

  if (grid && more) {
    more.addEventListener("click", function (event) {
      event.preventDefault();
      loadMorePhotos();
    });
    if ("IntersectionObserver" in window) {
      moreObserver = new IntersectionObserver(function (entries) {
        if (entries.some(function (entry) { return entry.isIntersecting; })) loadMorePhotos();
      }, { rootMargin: "800px" });
      moreObserver.observe(more);
    }
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
        var name = element("span", "upload__name", file.name);
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
          finish(item, data.duplicate ? "duplicate" : "done", data.message);
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
