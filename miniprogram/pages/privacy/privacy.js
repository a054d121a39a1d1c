// The privacy notice Relay serves (/privacy), shown in a web-view: its domain is the school's business domain.
const config = require('../../config');

Component({
  data: {url: ''},
  methods: {
    onLoad(options) {
      const url = decodeURIComponent((options && options.url) || '');
      // Only Relay's own notice: a link crafted into the page's query cannot open another site here.
      this.setData({url: url.startsWith(`${config.baseUrl}/`) ? url : `${config.baseUrl}/privacy`});
    },
  },
});
