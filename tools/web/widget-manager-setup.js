// Loaded after require.js and before the widget manager (embed-amd.js) on pages with widgets.
(function () {
  // 1. Point RequireJS at the widget manager served by this site (vendor/), not at a CDN, so the
  //    bundle's fonts and styles load from here. The bundle also defines named modules
  //    (@jupyter-widgets/controls, base, ...); webpack inside each resolves its font files against
  //    that module's RequireJS URL, which without a path would be <page folder>/@jupyter-widgets/
  //    (404). Mapping every bundled name into html-manager/dist/ makes those URLs land beside the
  //    fonts.
  var base = document.currentScript.src.replace(/[^/]*$/, "");
  var dist = base + "html-manager/dist";
  var paths = { "@jupyter-widgets/html-manager/dist": dist };
  ["base", "base7", "controls", "controls7", "html-manager"].forEach(function (name) {
    paths["@jupyter-widgets/" + name] = dist + "/" + name;
  });
  require.config({ paths: paths });

  // 2. The widget manager typesets widget labels with the MathJax 2 call MathJax.Hub.Queue(...),
  //    which throws under the book's MathJax 3 on pages that contain maths. Give whatever object
  //    is window.MathJax (the configuration first, MathJax 3 itself once loaded) a hidden Hub whose
  //    Queue forwards to MathJax 3's typesetPromise.
  function withHub(mj) {
    if (mj && typeof mj === "object" && !mj.Hub) {
      Object.defineProperty(mj, "Hub", {
        enumerable: false,
        configurable: true,
        value: {
          Queue: function (job) {
            var element = job && job[2];
            if (element && typeof mj.typesetPromise === "function") {
              mj.typesetPromise([element]).catch(function () {});
            }
          },
        },
      });
    }
    return mj;
  }
  var current = withHub(window.MathJax);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) { current = withHub(value); },
  });
})();
