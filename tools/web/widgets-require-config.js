// Point RequireJS at the widget manager served by this site (vendor/), not at a CDN, so that
// the bundle's fonts and styles load from here. Loaded after require.js, before embed-amd.js.
(function () {
  var base = document.currentScript.src.replace(/[^/]*$/, "");
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": base + "html-manager/dist" } });
})();
